package forward

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/dlmlab/difflm/torchx"
)

func TestSchedules(t *testing.T) {
	cases := []struct {
		name               string
		s                  Schedule
		t                  float64
		alpha, sigma, dsig float64
	}{
		{"loglinear t=0", LogLinear{Eps: 1e-3}, 0, 1, 0, 0.999},
		{"loglinear t=0.5", LogLinear{Eps: 1e-3}, 0.5, 0.5005, -math.Log(0.5005), 0.999 / 0.5005},
		{"loglinear t=1", LogLinear{Eps: 1e-3}, 1, 1e-3, -math.Log(1e-3), 999},
		{"cosine t=0", Cosine{Eps: 1e-3}, 0, 1, 0, 0},
		{"cosine t=0.5", Cosine{Eps: 1e-3}, 0.5, 1e-3 + 0.999*math.Sqrt2/2, -math.Log(1e-3 + 0.999*math.Sqrt2/2), 0.999 * math.Pi / 2 * math.Sqrt2 / 2 / (1e-3 + 0.999*math.Sqrt2/2)},
		{"cosine t=1", Cosine{Eps: 1e-3}, 1, 1e-3, -math.Log(1e-3), 0.999 * math.Pi / 2 / 1e-3},
		{"geometric t=0", Geometric{SigmaMin: 1e-4, SigmaMax: 20}, 0, math.Exp(-1e-4), 1e-4, 1e-4 * math.Log(2e5)},
		{"geometric t=0.5", Geometric{SigmaMin: 1e-4, SigmaMax: 20}, 0.5, math.Exp(-math.Sqrt(2e-3)), math.Sqrt(2e-3), math.Sqrt(2e-3) * math.Log(2e5)},
		{"geometric t=1", Geometric{SigmaMin: 1e-4, SigmaMax: 20}, 1, math.Exp(-20), 20, 20 * math.Log(2e5)},
	}
	for _, c := range cases {
		near := func(what string, got, want float64) {
			if math.Abs(got-want) > 1e-12*max(1, math.Abs(want)) {
				t.Errorf("%s: %s = %.15g, want %.15g", c.name, what, got, want)
			}
		}
		near("alpha", c.s.Alpha(c.t), c.alpha)
		near("sigma", c.s.Sigma(c.t), c.sigma)
		near("dsigma", c.s.DSigma(c.t), c.dsig)
		if c.t > 0 && c.t < 1 {
			const h = 1e-6
			fd := (c.s.Sigma(c.t+h) - c.s.Sigma(c.t-h)) / (2 * h)
			if math.Abs(fd-c.s.DSigma(c.t)) > 1e-6*max(1, fd) {
				t.Errorf("%s: DSigma %.10g, finite difference %.10g", c.name, c.s.DSigma(c.t), fd)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	good := DefaultConfig()
	emb := good
	emb.Name, emb.Embedding = "embedding", "table.npy"
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"none skips the rest", func(c *Config) { c.Name, c.Schedule = "none", "" }, ""},
		{"bad name", func(c *Config) { c.Name = "brownian" }, `process.name: "brownian" is not one of absorbing|uniform|embedding|gaussian|none`},
		{"gaussian", func(c *Config) { c.Name = "gaussian" }, ""},
		{"gaussian without dimension", func(c *Config) { c.Name, c.EmbedDim = "gaussian", 0 }, "process.embed_dim: 0, want at least 1"},
		{"gaussian upside down", func(c *Config) { c.Name, c.GammaMin, c.GammaMax = "gaussian", 5, -5 }, "process.gamma_min: want finite gamma_min < gamma_max, got 5 and -5"},
		{"bad schedule", func(c *Config) { c.Schedule = "linear" }, `process.schedule: "linear" is not one of loglinear|cosine|geometric`},
		{"eps zero", func(c *Config) { c.Eps = 0 }, "process.eps: 0 is outside (0, 1)"},
		{"eps one", func(c *Config) { c.Schedule, c.Eps = "cosine", 1 }, "process.eps: 1 is outside (0, 1)"},
		{"geometric order", func(c *Config) { c.Schedule, c.SigmaMin, c.SigmaMax = "geometric", 5, 1 },
			"process.sigma_min: want 0 < sigma_min < sigma_max < inf, got sigma_min 5, sigma_max 1"},
		{"knn_k", func(c *Config) { *c = emb; c.KnnK = 0 }, "process.knn_k: 0 must be at least 1"},
		{"no embedding", func(c *Config) { *c = emb; c.Embedding = "" },
			"process.embedding: empty (want FILE.npy, FILE.safetensors:TENSOR or checkpoint:FILE:TENSOR)"},
		{"safetensors without tensor", func(c *Config) { *c = emb; c.Embedding = "w.safetensors" },
			`process.embedding: "w.safetensors" names no tensor (want FILE.npy, FILE.safetensors:TENSOR or checkpoint:FILE:TENSOR)`},
		{"unknown format", func(c *Config) { *c = emb; c.Embedding = "w.bin:emb" },
			`process.embedding: "w.bin:emb": want FILE.npy, FILE.safetensors:TENSOR or checkpoint:FILE:TENSOR`},
		{"checkpoint without tensor", func(c *Config) { *c = emb; c.Embedding = "checkpoint:run/step100.safetensors" },
			`process.embedding: "checkpoint:run/step100.safetensors" names no tensor (want FILE.npy, FILE.safetensors:TENSOR or checkpoint:FILE:TENSOR)`},
		{"cache dir", func(c *Config) { *c = emb; c.EigenCacheDir = "" }, "process.eigen_cache_dir: must not be empty"},
	}
	for _, c := range cases {
		cfg := good
		c.edit(&cfg)
		err := cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: Validate() = %q, want %q", c.name, got, c.want)
		}
	}
}

// writeNpy writes a float32 C-order .npy file.
func writeNpy(t *testing.T, path string, rows [][]float32) {
	t.Helper()
	header := "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
		strconv.Itoa(len(rows)) + ", " + strconv.Itoa(len(rows[0])) + "), }"
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	buf := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
	buf = append(buf, header...)
	for _, r := range rows {
		for _, v := range r {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadEmbedding(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	writeNpy(t, filepath.Join(dir, "t.npy"), toyTable)
	flat := func(rows [][]float32) []float64 {
		var out []float64
		for _, r := range rows {
			for _, v := range r {
				out = append(out, float64(v))
			}
		}
		return out
	}
	st := map[string]stTensor{
		"model.embed": {Shape: []int64{7, 3}, Data: append(flat(toyTable), 9, 9, 9)},
		"flat":        {Shape: []int64{18}, Data: flat(toyTable)},
	}
	if err := writeSafetensors(filepath.Join(dir, "ck.safetensors"), st, map[string]string{"step": "100"}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{
		filepath.Join(dir, "t.npy"),
		filepath.Join(dir, "ck.safetensors") + ":model.embed", // V+1 rows: the last is dropped
		"checkpoint:" + filepath.Join(dir, "ck.safetensors") + ":model.embed",
	} {
		tab, err := LoadEmbedding(spec, 6)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		got := float64s(tab)
		want := flat(toyTable)
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", spec, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: value %d = %g, want %g", spec, i, got[i], want[i])
			}
		}
	}
	errs := []struct{ spec, want string }{
		{filepath.Join(dir, "missing.npy"), "load " + dir + "/missing.npy: open " + dir + "/missing.npy: no such file or directory"},
		{filepath.Join(dir, "t.npy"), "load " + dir + "/t.npy: table has 6 rows, want V=4 (or V+1)"},
		{"checkpoint:" + dir + "/ck.safetensors:wte", "load checkpoint:" + dir + `/ck.safetensors:wte: read ` + dir + `/ck.safetensors: no tensor "wte" (has [flat model.embed])`},
		{dir + "/ck.safetensors:flat", "load " + dir + "/ck.safetensors:flat: table of shape [18], want [V,D]"},
	}
	for _, e := range errs {
		_, err := LoadEmbedding(e.spec, 4)
		if err == nil || err.Error() != e.want {
			t.Errorf("LoadEmbedding(%s) error = %v, want %q", e.spec, err, e.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	writeNpy(t, filepath.Join(dir, "t.npy"), toyTable)
	big := make([][]float32, MaxCPUVocab+1)
	for i := range big {
		big[i] = []float32{float32(i), 1}
	}
	writeNpy(t, filepath.Join(dir, "big.npy"), big)
	base := DefaultConfig()
	base.Name, base.Embedding, base.EigenCacheDir, base.KnnK = "embedding", filepath.Join(dir, "t.npy"), dir, 2
	cases := []struct {
		name string
		edit func(*Config)
		v    int
		want string
	}{
		{"knn_k >= V", func(c *Config) { c.KnnK = 6 }, 6, "process.knn_k: 6 must be less than the vocabulary size V=6"},
		{"missing file", func(c *Config) { c.Embedding = dir + "/nope.npy" }, 6,
			"process.embedding: load " + dir + "/nope.npy: open " + dir + "/nope.npy: no such file or directory"},
		{"too big for CPU", func(c *Config) { c.Embedding = dir + "/big.npy" }, MaxCPUVocab + 1,
			"process.name: embedding with V=16385 needs a CUDA device: its dense V×V eigendecomposition takes 4 GB and O(V³) time; on a CPU keep V ≤ 16384 (data.vocab_size)"},
		{"none", func(c *Config) { c.Name = "none" }, 6, "process.name: none builds no Process (none: the ar objective needs none; gaussian: see Config.Gaussian)"},
		{"tiny vocabulary", func(c *Config) { c.Name = "uniform" }, 1, "process: vocabulary of 1 tokens, need at least 2"},
	}
	for _, c := range cases {
		cfg := base
		c.edit(&cfg)
		_, err := New(cfg, c.v, gotch.CPU)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: New error = %v, want %q", c.name, err, c.want)
		}
	}
	if gotch.CUDA.IsAvailable() {
		t.Log("CUDA visible: the V > MaxCPUVocab case above only checks the CPU path")
	}
}

// A second build with the same table reads the cached eigendecomposition;
// a cache entry for another graph is ignored and rewritten.
func TestEigenCache(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	table := toyTableTensor()
	defer table.MustDrop()
	first, err := NewEmbedding(table, 2, testSched, dir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Drop()
	files, _ := filepath.Glob(filepath.Join(dir, "eigen-*.safetensors"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one eigen file", files)
	}
	info, _ := os.Stat(files[0])
	second, err := NewEmbedding(table, 2, testSched, dir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Drop()
	again, _ := os.Stat(files[0])
	if !again.ModTime().Equal(info.ModTime()) {
		t.Fatal("second build rewrote the cache instead of reading it")
	}
	x := states(6)
	defer x.MustDrop()
	a := matrix(first.Row(x, []float64{0.7}, gotch.Double))
	b := matrix(second.Row(x, []float64{0.7}, gotch.Double))
	closeMatrix(t, "cached Row", b, a, 0)

	// Poison the cache with another k's decomposition under this key.
	other, err := NewEmbedding(table, 3, testSched, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Drop()
	lam, u := other.lam, other.u
	st := map[string]stTensor{"lambda": {Shape: lam.MustSize(), Data: float64s(lam)}, "u": {Shape: u.MustSize(), Data: float64s(u)}}
	if err := writeSafetensors(files[0], st, map[string]string{"table_sha256": "x"}); err != nil {
		t.Fatal(err)
	}
	third, err := NewEmbedding(table, 2, testSched, dir, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Drop()
	c := matrix(third.Row(x, []float64{0.7}, gotch.Double))
	closeMatrix(t, "Row after a poisoned cache", c, a, 1e-12)
}
