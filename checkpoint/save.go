package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Save writes tensors and meta to path atomically: into a temporary file in
// the same folder, fsynced, then renamed over path, so a crash leaves either
// the old file or the new one, never half of one. Tensors may live on any
// device; they are copied to the host one at a time. meta must not use the
// keys MetaFormat and MetaDataSHA256, which Save fills in.
func Save(path string, tensors map[string]*ts.Tensor, meta map[string]string) error {
	if err := save(path, tensors, meta); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", path, err)
	}
	return nil
}

func save(path string, tensors map[string]*ts.Tensor, meta map[string]string) error {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return fmt.Errorf("safetensors data is little-endian and this host is not")
	}
	names, header, err := layout(tensors)
	if err != nil {
		return err
	}
	md := map[string]string{}
	for k, v := range meta {
		if k == MetaFormat || k == MetaDataSHA256 {
			return fmt.Errorf("metadata key %q is reserved", k)
		}
		md[k] = v
	}
	md[MetaFormat] = FormatVersion
	// A placeholder of the digest's exact length: the header is written
	// first and patched once the data has streamed through the hash.
	md[MetaDataSHA256] = strings.Repeat("0", sha256.Size*2)
	head, err := encodeHeader(header, md)
	if err != nil {
		return err
	}

	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(head); err != nil {
		return err
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	for _, name := range names {
		if err := writeTensor(w, tensors[name]); err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
	}
	md[MetaDataSHA256] = hex.EncodeToString(h.Sum(nil))
	final, err := encodeHeader(header, md)
	if err != nil {
		return err
	}
	if len(final) != len(head) {
		return fmt.Errorf("header length changed from %d to %d bytes while patching the checksum", len(head), len(final))
	}
	if _, err := f.WriteAt(final, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(path))
}

// layout orders the tensors and assigns their byte ranges. Larger elements
// come first (then names in order), as the reference implementation does,
// so that every tensor starts at a multiple of its element size.
func layout(tensors map[string]*ts.Tensor) ([]string, map[string]entry, error) {
	names := make([]string, 0, len(tensors))
	for name, t := range tensors {
		if name == "" || name == metadataKey {
			return nil, nil, fmt.Errorf("invalid tensor name %q", name)
		}
		if t == nil || !t.MustDefined() {
			return nil, nil, fmt.Errorf("tensor %s is undefined", name)
		}
		if _, err := dtypeName(t.DType()); err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		si, sj := tensors[names[i]].DType().Size(), tensors[names[j]].DType().Size()
		if si != sj {
			return si > sj
		}
		return names[i] < names[j]
	})
	header := make(map[string]entry, len(names))
	var off int64
	for _, name := range names {
		t := tensors[name]
		dt, _ := dtypeName(t.DType())
		shape := t.MustSize()
		n := int64(t.Numel()) * int64(t.DType().Size())
		header[name] = entry{DType: dt, Shape: shape, Offsets: [2]int64{off, off + n}}
		off += n
	}
	return names, header, nil
}

// writeTensor streams t's bytes from libtorch memory to w without a Go copy.
func writeTensor(w io.Writer, t *ts.Tensor) error {
	var err error
	torchx.NoGrad(func() { err = withHostBytes(t, func(b []byte) error { _, e := w.Write(b); return e }) })
	return err
}

// withHostBytes calls fn with the bytes of a contiguous host copy of t (t
// itself when it already is one). fn must not keep the slice.
func withHostBytes(t *ts.Tensor, fn func([]byte) error) error {
	n := int(t.Numel()) * int(t.DType().Size())
	if n == 0 {
		return fn(nil)
	}
	host, err := t.To(gotch.CPU, false)
	if err != nil {
		return err
	}
	defer host.MustDrop()
	c, err := host.Contiguous(false)
	if err != nil {
		return err
	}
	defer c.MustDrop()
	ptr, err := c.DataPtr()
	if err != nil {
		return err
	}
	err = fn(unsafe.Slice((*byte)(ptr), n))
	runtime.KeepAlive(c)
	return err
}

// syncDir makes a rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
