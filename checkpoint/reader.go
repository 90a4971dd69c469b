package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"unsafe"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Reader gives access to one checkpoint file whose structure and checksum
// have been verified.
type Reader struct {
	path   string
	f      *os.File
	meta   map[string]string
	header map[string]entry
	data   int64 // file offset of the data section
}

// Open reads and checks the header of the safetensors file at path and, when
// the file records one, verifies the sha256 of its data section (reading the
// file once). Files written by other safetensors writers (no checksum, no
// format version) are accepted as they are.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	r := &Reader{path: path, f: f}
	if err := r.check(); err != nil {
		f.Close()
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return r, nil
}

func (r *Reader) check() error {
	st, err := r.f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(r.f, lenBuf[:]); err != nil {
		return fmt.Errorf("truncated: file has %d bytes, too short for the header length", size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader {
		return fmt.Errorf("corrupt: header length %d is implausible (over %d)", n, maxHeader)
	}
	if int64(n) > size-8 {
		return fmt.Errorf("truncated: header says %d bytes of header, file has %d after the length", n, size-8)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r.f, raw); err != nil {
		return err
	}
	r.data = 8 + int64(n)
	dataLen, err := r.parseHeader(raw)
	if err != nil {
		return err
	}
	if have := size - r.data; have != dataLen {
		if have < dataLen {
			return fmt.Errorf("truncated: header says %d bytes of data, file has %d", dataLen, have)
		}
		return fmt.Errorf("corrupt: header says %d bytes of data, file has %d", dataLen, have)
	}
	if v, ok := r.meta[MetaFormat]; ok && v != FormatVersion {
		return fmt.Errorf("format %q, this program reads %q", v, FormatVersion)
	}
	want, ok := r.meta[MetaDataSHA256]
	if !ok {
		return nil
	}
	got, err := hashSection(r.f, r.data, dataLen)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("checksum mismatch: data section has sha256 %s, header says %s (file corrupt)", got, want)
	}
	return nil
}

// parseHeader fills meta and header and returns the data section's length.
// Byte ranges must tile the data section exactly, as the format requires.
func (r *Reader) parseHeader(raw []byte) (int64, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, fmt.Errorf("corrupt header: %w", err)
	}
	r.meta = map[string]string{}
	r.header = make(map[string]entry, len(doc))
	if m, ok := doc[metadataKey]; ok {
		if err := json.Unmarshal(m, &r.meta); err != nil {
			return 0, fmt.Errorf("corrupt header: %s: %w", metadataKey, err)
		}
		delete(doc, metadataKey)
	}
	type span struct {
		name string
		e    entry
	}
	spans := make([]span, 0, len(doc))
	for name, js := range doc {
		var e entry
		if err := json.Unmarshal(js, &e); err != nil {
			return 0, fmt.Errorf("corrupt header: tensor %s: %w", name, err)
		}
		dt, err := dtypeOf(e.DType)
		if err != nil {
			return 0, fmt.Errorf("tensor %s: %w", name, err)
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt64/16/d) {
				return 0, fmt.Errorf("corrupt header: tensor %s has shape %v", name, e.Shape)
			}
			numel *= d
		}
		if got := e.Offsets[1] - e.Offsets[0]; got != numel*int64(dt.Size()) {
			return 0, fmt.Errorf("corrupt header: tensor %s: %s%v needs %d bytes, range holds %d", name, e.DType, e.Shape, numel*int64(dt.Size()), got)
		}
		r.header[name] = e
		spans = append(spans, span{name, e})
	}
	// By start, then end: an empty tensor shares its start with the tensor
	// after it, and must come first for the ranges to chain.
	sort.Slice(spans, func(i, j int) bool {
		a, b := spans[i].e.Offsets, spans[j].e.Offsets
		return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1])
	})
	var end int64
	for _, s := range spans {
		if s.e.Offsets[0] != end {
			return 0, fmt.Errorf("corrupt header: tensor %s starts at byte %d, expected %d", s.name, s.e.Offsets[0], end)
		}
		end = s.e.Offsets[1]
	}
	return end, nil
}

// hashSection returns the hex sha256 of n bytes of f from off.
func hashSection(f *os.File, off, n int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Path is the file the reader was opened on.
func (r *Reader) Path() string { return r.path }

// Meta returns the metadata map (the caller may modify the copy).
func (r *Reader) Meta() map[string]string {
	out := make(map[string]string, len(r.meta))
	for k, v := range r.meta {
		out[k] = v
	}
	return out
}

// Names lists the tensors in the file, sorted.
func (r *Reader) Names() []string {
	names := make([]string, 0, len(r.header))
	for n := range r.header {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Has reports whether the file holds a tensor called name.
func (r *Reader) Has(name string) bool {
	_, ok := r.header[name]
	return ok
}

// Tensor reads one tensor into a new host tensor, straight into libtorch's
// memory. The caller owns (and drops) it.
func (r *Reader) Tensor(name string) (*ts.Tensor, error) {
	e, ok := r.header[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no tensor %s", r.path, name)
	}
	dt, _ := dtypeOf(e.DType)
	t, err := empty(e.Shape, dt)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", r.path, name, err)
	}
	n := e.Offsets[1] - e.Offsets[0]
	if n == 0 {
		return t, nil
	}
	ptr, err := t.DataPtr()
	if err == nil {
		_, err = r.f.ReadAt(unsafe.Slice((*byte)(ptr), n), r.data+e.Offsets[0])
	}
	runtime.KeepAlive(t)
	if err != nil {
		t.MustDrop()
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", r.path, name, err)
	}
	return t, nil
}

// empty allocates a host tensor of shape. gotch's bindings index the shape
// slice's first element, so a scalar (shape []) is made as [1] and squeezed.
func empty(shape []int64, dt gotch.DType) (*ts.Tensor, error) {
	if len(shape) > 0 {
		return ts.Empty(shape, dt, gotch.CPU)
	}
	t, err := ts.Empty([]int64{1}, dt, gotch.CPU)
	if err != nil {
		return nil, err
	}
	return t.Squeeze(true)
}

// CopyInto copies tensor name into dst (any device, same shape; the dtype is
// converted if it differs) without recording gradients.
func (r *Reader) CopyInto(name string, dst *ts.Tensor) error {
	src, err := r.Tensor(name)
	if err != nil {
		return err
	}
	defer src.MustDrop()
	if got, want := src.MustSize(), dst.MustSize(); !slices.Equal(got, want) {
		return fmt.Errorf("checkpoint %s: tensor %s has shape %v, the model expects %v", r.path, name, got, want)
	}
	torchx.NoGrad(func() { dst.Copy_(src) })
	return nil
}

// Close releases the file.
func (r *Reader) Close() error { return r.f.Close() }

// Load reads every tensor of a checkpoint onto the host, with its metadata.
func Load(path string) (map[string]*ts.Tensor, map[string]string, error) {
	r, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out := make(map[string]*ts.Tensor, len(r.header))
	for _, name := range r.Names() {
		t, err := r.Tensor(name)
		if err != nil {
			for _, t := range out {
				t.MustDrop()
			}
			return nil, nil, err
		}
		out[name] = t
	}
	return out, r.Meta(), nil
}
