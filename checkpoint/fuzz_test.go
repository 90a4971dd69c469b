package checkpoint

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// FuzzOpen: any file is a checkpoint or an error naming what is wrong,
// never a panic, and reading a tensor of an accepted file never allocates
// more than the file holds.
func FuzzOpen(f *testing.F) {
	torchx.Lock()
	dir := f.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	x := ts.MustOfSlice([]float32{1, 2, 3, 4}).MustView([]int64{2, 2}, true)
	if err := Save(good, map[string]*ts.Tensor{"w": x}, map[string]string{"step": "3"}); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	header := []byte(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`)
	f.Add(append(binary.LittleEndian.AppendUint64(nil, uint64(len(header))), header...))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		torchx.Lock()
		path := filepath.Join(t.TempDir(), "x.safetensors")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			return
		}
		defer r.Close()
		for _, name := range r.Names() {
			if x, err := r.Tensor(name); err == nil {
				if int64(x.Numel()) > int64(len(b)) {
					t.Fatalf("tensor %s of %d elements from a %d-byte file", name, x.Numel(), len(b))
				}
				x.MustDrop()
			}
		}
	})
}
