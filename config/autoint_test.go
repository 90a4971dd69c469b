package config

import (
	"strings"
	"testing"
)

type autoCfg struct {
	Threads AutoInt `mapstructure:"threads"`
}

func (c *autoCfg) Validate() error {
	_, _, err := c.Threads.Value()
	if err != nil {
		return err
	}
	return nil
}

func TestAutoInt(t *testing.T) {
	for _, c := range []struct {
		yaml, set string
		want      AutoInt
		n         int
		auto      bool
		err       string
	}{
		{yaml: "", want: Auto, auto: true},
		{yaml: "threads: auto\n", want: Auto, auto: true},
		{yaml: "threads: 3\n", want: "3", n: 3},
		{set: "threads=2", want: "2", n: 2},
		{set: "threads=auto", want: Auto, auto: true},
		{yaml: "threads: many\n", err: `threads: want auto or an integer, got "many" (a string)`},
		{yaml: "threads: 1.5\n", err: "threads: want auto or an integer, got 1.5"},
		{yaml: "threads: 0\n", err: `"0": want auto or a positive integer`},
		{yaml: "threads: [1]\n", err: "threads: want auto or an integer, got a list"},
	} {
		cfg := &autoCfg{Threads: Auto}
		path := ""
		if c.yaml != "" {
			path = write(t, c.yaml)
		}
		var sets []string
		if c.set != "" {
			sets = []string{c.set}
		}
		_, err := Load(path, sets, cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %q: error %v, want %q", c.yaml, c.set, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", c.yaml, c.set, err)
			continue
		}
		if text, err := Dump(cfg); err != nil || !strings.Contains(text, "threads: "+string(c.want)+"\n") {
			t.Errorf("%q %q: dump %q (%v), want threads: %s unquoted", c.yaml, c.set, text, err, c.want)
		}
		n, auto, _ := cfg.Threads.Value()
		if cfg.Threads != c.want || n != c.n || auto != c.auto {
			t.Errorf("%q %q: %q = (%d, %v), want %q = (%d, %v)", c.yaml, c.set, cfg.Threads, n, auto, c.want, c.n, c.auto)
		}
	}
}
