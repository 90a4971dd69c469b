package forward

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// A minimal reader and writer for safetensors files (8-byte little-endian
// header length, a JSON header, then raw little-endian data): the format of
// training checkpoints and of the eigendecomposition cache.

// stEntry is one tensor in a safetensors header.
type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// stTensor is a float tensor held in Go memory, in row-major order.
type stTensor struct {
	Shape []int64
	Data  []float64
}

// readSafetensor reads the tensor called name from a safetensors file,
// converting F32, F64, F16 and BF16 to float64; it also returns the
// file's __metadata__ (nil if none).
func readSafetensor(path, name string) (stTensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return stTensor{}, nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return stTensor{}, nil, fmt.Errorf("read %s: header length: %w", path, err)
	}
	if n > 100<<20 {
		return stTensor{}, nil, fmt.Errorf("read %s: header of %d bytes: not a safetensors file", path, n)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(f, head); err != nil {
		return stTensor{}, nil, fmt.Errorf("read %s: header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(head, &raw); err != nil {
		return stTensor{}, nil, fmt.Errorf("read %s: header: %w", path, err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return stTensor{}, nil, fmt.Errorf("read %s: __metadata__: %w", path, err)
		}
	}
	msg, ok := raw[name]
	if !ok {
		var names []string
		for k := range raw {
			if k != "__metadata__" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		return stTensor{}, nil, fmt.Errorf("read %s: no tensor %q (has %v)", path, name, names)
	}
	var e stEntry
	if err := json.Unmarshal(msg, &e); err != nil {
		return stTensor{}, nil, fmt.Errorf("read %s: entry %q: %w", path, name, err)
	}
	size := map[string]int64{"F32": 4, "F64": 8, "F16": 2, "BF16": 2}[e.DType]
	if size == 0 {
		return stTensor{}, nil, fmt.Errorf("read %s: tensor %q has dtype %s, want F32, F64, F16 or BF16", path, name, e.DType)
	}
	count := int64(1)
	for _, d := range e.Shape {
		count *= d
	}
	if e.Offsets[1]-e.Offsets[0] != count*size {
		return stTensor{}, nil, fmt.Errorf("read %s: tensor %q: %d bytes for shape %v of %s", path, name, e.Offsets[1]-e.Offsets[0], e.Shape, e.DType)
	}
	buf := make([]byte, count*size)
	if _, err := f.ReadAt(buf, 8+int64(n)+e.Offsets[0]); err != nil {
		return stTensor{}, nil, fmt.Errorf("read %s: tensor %q: %w", path, name, err)
	}
	data := make([]float64, count)
	le := binary.LittleEndian
	for i := range data {
		switch e.DType {
		case "F32":
			data[i] = float64(math.Float32frombits(le.Uint32(buf[4*i:])))
		case "F64":
			data[i] = math.Float64frombits(le.Uint64(buf[8*i:]))
		case "BF16":
			data[i] = float64(math.Float32frombits(uint32(le.Uint16(buf[2*i:])) << 16))
		case "F16":
			data[i] = halfToFloat(le.Uint16(buf[2*i:]))
		}
	}
	return stTensor{Shape: e.Shape, Data: data}, meta, nil
}

// writeSafetensors writes float64 tensors (as F64) and metadata to path,
// through a temporary file renamed into place so that a reader never sees
// a half-written cache entry.
func writeSafetensors(path string, tensors map[string]stTensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		names = append(names, k)
	}
	sort.Strings(names)
	header := map[string]any{}
	if meta != nil {
		header["__metadata__"] = meta
	}
	var off int64
	for _, k := range names {
		end := off + 8*int64(len(tensors[k].Data))
		header[k] = stEntry{DType: "F64", Shape: tensors[k].Shape, Offsets: [2]int64{off, end}}
		off = end
	}
	head, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	for len(head)%8 != 0 {
		head = append(head, ' ')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	buf := make([]byte, 8, 1<<20)
	binary.LittleEndian.PutUint64(buf, uint64(len(head)))
	buf = append(buf, head...)
	for _, k := range names {
		for _, v := range tensors[k].Data {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
			if len(buf) >= 1<<20 {
				if _, err := tmp.Write(buf); err != nil {
					tmp.Close()
					return fmt.Errorf("write %s: %w", path, err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := tmp.Write(buf); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac * math.Pow(2, -24)
	case 31:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}
