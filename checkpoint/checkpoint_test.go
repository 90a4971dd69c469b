package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// rawBytes returns a copy of t's bytes as stored in memory.
func rawBytes(t *testing.T, x *ts.Tensor) []byte {
	t.Helper()
	var out []byte
	if err := withHostBytes(x, func(b []byte) error { out = bytes.Clone(b); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// specimens are tensors whose bit patterns a lossy path would change: a NaN
// with a payload, signed zero, infinities, a subnormal, int64 extremes, a
// scalar and an empty tensor.
func specimens() map[string]*ts.Tensor {
	nan := math.Float32frombits(0x7fc00123)
	f := []float32{0, float32(math.Copysign(0, -1)), 1.5, nan, float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(1), math.MaxFloat32}
	return map[string]*ts.Tensor{
		"model.w":    ts.MustOfSlice(f).MustView([]int64{2, 4}, true),
		"opt.step":   ts.MustOfSlice([]int64{math.MinInt64, -1, 0, math.MaxInt64}),
		"ema.scalar": ts.MustOfSlice([]float64{math.Pi}).MustSqueeze(true),
		"empty":      ts.MustZeros([]int64{0, 3}, gotch.Float, gotch.CPU),
	}
}

func TestRoundTripIsBitExact(t *testing.T) {
	torchx.Lock()
	path := filepath.Join(t.TempDir(), "ckpt-000007.safetensors")
	in := specimens()
	meta := map[string]string{MetaStep: "7", MetaConfig: "train:\n  lr: 0.0003\n", MetaDataState: "AAEC"}
	if err := Save(path, in, meta); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("loaded %d tensors, saved %d", len(out), len(in))
	}
	for name, want := range in {
		got := out[name]
		if got == nil {
			t.Fatalf("tensor %s missing after load", name)
		}
		if got.DType() != want.DType() || !slices.Equal(got.MustSize(), want.MustSize()) {
			t.Errorf("%s: loaded %v%v, saved %v%v", name, got.DType(), got.MustSize(), want.DType(), want.MustSize())
		}
		if !bytes.Equal(rawBytes(t, got), rawBytes(t, want)) {
			t.Errorf("%s: bytes differ after round trip", name)
		}
	}
	for k, v := range meta {
		if gotMeta[k] != v {
			t.Errorf("meta[%s] = %q, want %q", k, gotMeta[k], v)
		}
	}
	if gotMeta[MetaFormat] != FormatVersion || len(gotMeta[MetaDataSHA256]) != 64 {
		t.Errorf("format/checksum metadata missing: %v", gotMeta)
	}
}

// TestFileFollowsSafetensorsSpec reads a file with the format's own rules
// rather than with Load: a little-endian u64 header length, a JSON header
// padded to 8 bytes, data_offsets relative to the data section, tensors
// packed with the larger element size first. This is what
// safetensors.torch.load_file(path) parses; python3-safetensors is not
// packaged in Debian bookworm, so the Python check below uses the stdlib
// and torch.frombuffer instead.
func TestFileFollowsSafetensorsSpec(t *testing.T) {
	torchx.Lock()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	tensors := map[string]*ts.Tensor{
		"a": ts.MustOfSlice([]float32{1, -2.5, 3}),
		"b": ts.MustOfSlice([]int64{7, -8}),
	}
	if err := Save(path, tensors, map[string]string{"note": "x<y"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(header["__metadata__"], &meta); err != nil || meta["note"] != "x<y" {
		t.Errorf("__metadata__ = %s (%v)", header["__metadata__"], err)
	}
	want := map[string]entry{
		"b": {DType: "I64", Shape: []int64{2}, Offsets: [2]int64{0, 16}},
		"a": {DType: "F32", Shape: []int64{3}, Offsets: [2]int64{16, 28}},
	}
	for name, w := range want {
		var e entry
		if err := json.Unmarshal(header[name], &e); err != nil {
			t.Fatal(err)
		}
		if e.DType != w.DType || !slices.Equal(e.Shape, w.Shape) || e.Offsets != w.Offsets {
			t.Errorf("%s: header entry %+v, want %+v", name, e, w)
		}
	}
	data := raw[8+n:]
	if len(data) != 28 {
		t.Fatalf("data section has %d bytes, want 28", len(data))
	}
	if v := int64(binary.LittleEndian.Uint64(data[8:16])); v != -8 {
		t.Errorf("b[1] = %d, want -8", v)
	}
	if v := math.Float32frombits(binary.LittleEndian.Uint32(data[20:24])); v != -2.5 {
		t.Errorf("a[1] = %v, want -2.5", v)
	}

	const py = `
import json, struct, sys, torch
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
data = bytearray(raw[8 + n:])
kinds = {"F32": torch.float32, "I64": torch.int64}
for k in sorted(h):
    if k == "__metadata__":
        continue
    b, e = h[k]["data_offsets"]
    x = torch.frombuffer(data[b:e], dtype=kinds[h[k]["dtype"]]).reshape(h[k]["shape"])
    print(k, x.tolist())
`
	outPy, err := exec.Command("/usr/bin/python3", "-c", py, path).CombinedOutput()
	if err != nil {
		t.Skipf("python3 with torch not usable here (%v): %s", err, outPy)
	}
	if got, want := strings.TrimSpace(string(outPy)), "a [1.0, -2.5, 3.0]\nb [7, -8]"; got != want {
		t.Errorf("PyTorch reads\n%s\nwant\n%s", got, want)
	}
}

func TestDamagedFilesAreRefused(t *testing.T) {
	torchx.Lock()
	cases := []struct {
		name   string
		damage func(raw []byte) []byte
		want   string
	}{
		{"truncated data", func(raw []byte) []byte { return raw[:len(raw)-10] },
			"truncated: header says 64 bytes of data, file has 54"},
		{"flipped data byte", func(raw []byte) []byte { raw[len(raw)-5] ^= 0x10; return raw },
			"checksum mismatch"},
		{"trailing bytes", func(raw []byte) []byte { return append(raw, 0) },
			"corrupt: header says 64 bytes of data, file has 65"},
		{"cut in the header", func(raw []byte) []byte { return raw[:20] },
			"truncated: header says"},
		{"empty file", func(raw []byte) []byte { return nil },
			"truncated: file has 0 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ckpt-000100.safetensors")
			x := ts.MustOfSlice([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
			if err := Save(path, map[string]*ts.Tensor{"x": x}, nil); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.damage(raw), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Open(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want an error naming %s and containing %q", err, path, c.want)
			}
		})
	}
}

func TestFailedSaveKeepsOldFile(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	path := Path(dir, 3)
	if err := Save(path, map[string]*ts.Tensor{"x": ts.MustOfSlice([]float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	err := Save(path, map[string]*ts.Tensor{"x": ts.MustOfSlice([]float32{2}), "bad": ts.None}, nil)
	if err == nil || !strings.Contains(err.Error(), "tensor bad is undefined") {
		t.Fatalf("Save with an undefined tensor = %v", err)
	}
	err = Save(path, map[string]*ts.Tensor{"x": ts.MustOfSlice([]float32{2})}, map[string]string{MetaFormat: "mine"})
	if err == nil || !strings.Contains(err.Error(), `"format" is reserved`) {
		t.Fatalf("Save with a reserved metadata key = %v", err)
	}
	got, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := got["x"].Float64Values(); v[0] != 1 {
		t.Errorf("old checkpoint changed to %v", v)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("folder holds %d files after failed saves, want 1", len(files))
	}
}

// save1 writes a checkpoint holding x = [v] for step.
func save1(t *testing.T, dir string, step int, v float32) {
	t.Helper()
	if err := Save(Path(dir, step), map[string]*ts.Tensor{"x": ts.MustOfSlice([]float32{v})}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLatestSkipsCorruptNewest(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	if _, err := Latest(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest of an empty folder = %v, want ErrNotFound", err)
	}
	for step := 1; step <= 3; step++ {
		save1(t, dir, step*100, float32(step))
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Latest(dir); err != nil || got != Path(dir, 300) {
		t.Fatalf("Latest = %q, %v; want %s", got, err, Path(dir, 300))
	}
	raw, _ := os.ReadFile(Path(dir, 300))
	raw[len(raw)-1] ^= 1
	os.WriteFile(Path(dir, 300), raw, 0o644)
	if got, err := Latest(dir); err != nil || got != Path(dir, 200) {
		t.Fatalf("Latest with corrupt newest = %q, %v; want %s", got, err, Path(dir, 200))
	}
}

func TestPruneKeepsLastK(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	for _, step := range []int{5, 1000000, 10, 15, 20} {
		save1(t, dir, step, 1)
	}
	stale := Path(dir, 25) + ".tmp123"
	os.WriteFile(stale, []byte("half a checkpoint"), 0o644)
	if err := Prune(dir, 2); err != nil {
		t.Fatal(err)
	}
	entries, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, e := range entries {
		steps = append(steps, e.Step)
	}
	if len(steps) != 2 || steps[0] != 20 || steps[1] != 1000000 {
		t.Errorf("after Prune(2) steps = %v, want [20 1000000]", steps)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file survived Prune: %v", err)
	}
}

func TestLoadIntoPicksWeights(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	vs := nn.NewVarStore(gotch.CPU)
	w := vs.Root().Sub("layer").MustNewVar("w", []int64{2}, nn.NewConstInit(0))
	train := filepath.Join(dir, "train.safetensors")
	err := Save(train, map[string]*ts.Tensor{
		"model.layer.w": ts.MustOfSlice([]float32{1, 2}),
		"ema.layer.w":   ts.MustOfSlice([]float32{3, 4}),
	}, map[string]string{MetaStep: "9"})
	if err != nil {
		t.Fatal(err)
	}
	noEMA := filepath.Join(dir, "noema.safetensors")
	if err := Save(noEMA, map[string]*ts.Tensor{"model.layer.w": ts.MustOfSlice([]float32{5, 6})}, nil); err != nil {
		t.Fatal(err)
	}
	wrongShape := filepath.Join(dir, "wrong.safetensors")
	if err := Save(wrongShape, map[string]*ts.Tensor{"model.layer.w": ts.MustOfSlice([]float32{1, 2, 3})}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, prefer string
		want         []float64
		err          string
	}{
		{train, "ema", []float64{3, 4}, ""},
		{train, "model", []float64{1, 2}, ""},
		{noEMA, "ema", []float64{5, 6}, ""},
		{wrongShape, "model", nil, "tensor model.layer.w has shape [3], the model expects [2]"},
		{train, "best", nil, `prefer "best"`},
	}
	for _, c := range cases {
		meta, err := LoadInto(vs, c.path, c.prefer)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("LoadInto(%s, %s) = %v, want error %q", filepath.Base(c.path), c.prefer, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Float64Values(); got[0] != c.want[0] || got[1] != c.want[1] {
			t.Errorf("LoadInto(%s, %s) gave %v, want %v", filepath.Base(c.path), c.prefer, got, c.want)
		}
		if c.path == train && meta[MetaStep] != "9" {
			t.Errorf("metadata step = %q", meta[MetaStep])
		}
	}
	if !w.MustRequiresGrad() {
		t.Error("LoadInto turned off requires_grad of a parameter")
	}

	// An exported model carries plain names and loads back the same way.
	exported := filepath.Join(dir, "export.safetensors")
	if err := ExportModel(exported, vs, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Open(exported)
	if err != nil {
		t.Fatal(err)
	}
	if names := r.Names(); len(names) != 1 || names[0] != "layer.w" {
		t.Errorf("exported names %v, want [layer.w]", names)
	}
	r.Close()
	torchx.NoGrad(func() { w.MustFill_(ts.FloatScalar(0)) })
	if _, err := LoadInto(vs, exported, "ema"); err != nil {
		t.Fatal(err)
	}
	if got := w.Float64Values(); got[0] != 5 || got[1] != 6 {
		t.Errorf("exported model loads as %v, want the exported [5 6]", got)
	}
}
