//go:build peer

package models

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestMatchesPyTorchPeer dumps models and inputs, has testdata/peer.py
// (PyTorch eager, Debian's python3-torch) compute the logits from them and
// compares: the Go model is the network it claims to be, parameter names
// included. Needs /usr/bin/python3 with torch: go test -tags peer ./models
//
// PEER_DEVICE=cuda runs both sides on the GPU (tools/gpucheck.sh, with
// PEER_PYTHON naming the interpreter of the CUDA wheel): the same logits to
// 1e-3, the CUDA kernels' summation orders allowed for.
func TestMatchesPyTorchPeer(t *testing.T) {
	torchx.Lock()
	dev, tol := gotch.CPU, 1e-4
	if d := os.Getenv("PEER_DEVICE"); d != "" && d != "cpu" {
		var err error
		if dev, err = torchx.ParseDevice(d); err != nil {
			t.Fatalf("PEER_DEVICE: %v", err)
		}
		tol = 1e-3
	}
	python := "/usr/bin/python3"
	if p := os.Getenv("PEER_PYTHON"); p != "" {
		python = p
	}
	cfg := Config{Preset: "custom", Layers: 2, Width: 48, Heads: 3, MLPRatio: 2.5, CondDim: 16, MaxLen: 32, Attention: "math"}
	for _, spec := range []Spec{
		{VocabIn: 41, VocabOut: 40},
		{VocabIn: 41, VocabOut: 40, TimeCond: true},
		{VocabIn: 40, VocabOut: 40, Causal: true},
	} {
		m, vs := newTestModelOn(t, cfg, spec, 13, dev)
		for _, v := range vs.TrainableVariables() { // move every parameter off its init, adaLN gates included
			perturb(v, 0.05)
		}
		dir := t.TempDir()
		rows := randomRows(3, 11, spec.VocabIn, 13)
		x := tokenTensor(rows).MustTo(dev, true)
		var sigma *ts.Tensor
		if spec.TimeCond {
			sigma = sigmaTensor(0.05, 1.5, 6).MustTo(dev, true)
			writeBin(t, filepath.Join(dir, "sigma.bin"), []float32{0.05, 1.5, 6})
		}
		var flat []int64
		for _, r := range rows {
			flat = append(flat, r...)
		}
		writeBin(t, filepath.Join(dir, "x.bin"), flat)
		shapes := map[string][]int64{}
		for name, v := range vs.Variables() {
			shapes[name] = v.MustSize()
			vals := v.Float64Values()
			f32 := make([]float32, len(vals))
			for i, x := range vals {
				f32[i] = float32(x)
			}
			writeBin(t, filepath.Join(dir, name+".bin"), f32)
		}
		manifest := map[string]any{
			"layers": cfg.Layers, "width": cfg.Width, "heads": cfg.Heads, "hidden": cfg.hidden(), "cond_dim": cfg.CondDim,
			"vocab_in": spec.VocabIn, "vocab_out": spec.VocabOut, "causal": spec.Causal, "time_cond": spec.TimeCond,
			"max_len": cfg.MaxLen, "params": shapes, "x_shape": []int{3, 11},
		}
		js, _ := json.Marshal(manifest)
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(python, "testdata/peer.py", "check", dir)
		cmd.Env = append(os.Environ(), "PEER_DEVICE="+torchx.DeviceName(dev))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("peer.py check: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "logits.bin"))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(raw)/4)
		if _, err := binary.Decode(raw, binary.LittleEndian, want); err != nil {
			t.Fatal(err)
		}
		got := forwardValues(m, x, sigma)
		if len(got) != len(want) {
			t.Fatalf("%+v: %d logits, PyTorch gave %d", spec, len(got), len(want))
		}
		w64 := make([]float64, len(want))
		for i, v := range want {
			w64[i] = float64(v)
		}
		if d := maxAbsDiff(got, w64, 0, len(got)); d > tol {
			t.Errorf("%+v: Go and PyTorch logits differ by up to %g", spec, d)
		} else {
			t.Logf("%+v: Go and PyTorch logits agree within %g", spec, d)
		}
	}
}

func writeBin(t *testing.T, path string, data any) {
	t.Helper()
	buf, err := binary.Append(nil, binary.LittleEndian, data)
	if err == nil {
		err = os.WriteFile(path, buf, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
