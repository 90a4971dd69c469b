package dist

import (
	"strings"
	"testing"
)

func TestFirstHost(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"node7", "node7", ""},
		{"gpu[07-09,12],cpu3", "gpu07", ""},
		{"a1,a2", "a1", ""},
		{"rack[1-2]-n[4,6]", "rack1-n4", ""},
		{"n[3]", "n3", ""},
		{"", "", "not a Slurm node list"},
		{"n[", "", "not a Slurm node list"},
		{"n[]", "", "not a Slurm node list"},
		{"n[[1]]", "", "not a Slurm node list"},
	} {
		got, err := FirstHost(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("FirstHost(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("FirstHost(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		ok   bool
		want Options
		err  string
	}{
		{name: "plain run", env: map[string]string{}},
		{name: "torchrun one rank", env: map[string]string{"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "h"}},
		{name: "torchrun", ok: true,
			env:  map[string]string{"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h0", "MASTER_PORT": "1234"},
			want: Options{Rank: 3, World: 4, LocalRank: 1, Addr: "h0", Port: 1234, Source: "torchrun"}},
		{name: "torchrun default port", ok: true,
			env:  map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h0"},
			want: Options{Rank: 1, World: 2, Addr: "h0", Port: DefaultPort, Source: "torchrun"}},
		{name: "slurm", ok: true,
			env:  map[string]string{"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[03-04]"},
			want: Options{Rank: 5, World: 8, LocalRank: 1, Addr: "gpu03", Port: DefaultPort, Source: "slurm"}},
		{name: "slurm MASTER_ADDR wins", ok: true,
			env:  map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "gpu[03-04]", "MASTER_ADDR": "login"},
			want: Options{Rank: 0, World: 2, Addr: "login", Port: DefaultPort, Source: "slurm"}},
		{name: "slurm single task", env: map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_NODELIST": "n1"}},
		{name: "torchrun wins over slurm", ok: true,
			env:  map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"},
			want: Options{Rank: 1, World: 2, Addr: "h", Port: DefaultPort, Source: "torchrun"}},
		{name: "bad rank", env: map[string]string{"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, err: `RANK="x"`},
		{name: "rank outside", env: map[string]string{"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, err: "outside WORLD_SIZE=2"},
		{name: "no addr", env: map[string]string{"RANK": "0", "WORLD_SIZE": "2"}, err: "MASTER_ADDR is not set"},
		{name: "bad port", env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "99999"}, err: "MASTER_PORT"},
	} {
		got, ok, err := FromEnv(func(k string) string { return c.env[k] })
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("%s: FromEnv = %+v, %v, %v; want %+v, %v", c.name, got, ok, err, c.want, c.ok)
		}
	}
}
