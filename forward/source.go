package forward

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// source is a parsed process.embedding value.
type source struct {
	path   string
	tensor string // empty for .npy
}

// parseSource accepts FILE.npy, FILE.safetensors:TENSOR and
// checkpoint:FILE:TENSOR (FILE may itself contain colons; the tensor name
// is what follows the last one).
func parseSource(spec string) (source, error) {
	want := "want FILE.npy, FILE.safetensors:TENSOR or checkpoint:FILE:TENSOR"
	if spec == "" {
		return source{}, fmt.Errorf("empty (%s)", want)
	}
	rest, isCkpt := strings.CutPrefix(spec, "checkpoint:")
	if !isCkpt && strings.HasSuffix(spec, ".npy") {
		return source{path: spec}, nil
	}
	i := strings.LastIndex(rest, ":")
	if i <= 0 || i == len(rest)-1 {
		return source{}, fmt.Errorf("%q names no tensor (%s)", spec, want)
	}
	src := source{path: rest[:i], tensor: rest[i+1:]}
	if !isCkpt && !strings.HasSuffix(src.path, ".safetensors") {
		return source{}, fmt.Errorf("%q: %s", spec, want)
	}
	return src, nil
}

// SourceFile is the file an embedding source spec (Config.Embedding)
// reads.
func SourceFile(spec string) (string, error) {
	src, err := parseSource(spec)
	return src.path, err
}

// LoadEmbedding loads the frozen embedding table named by spec (see
// Config.Embedding) as float32 [V,D] on the CPU. A table with V+1 rows is
// accepted and its last row dropped: it is the embedding of a model whose
// input vocabulary had the extra mask (or BOS) id V.
func LoadEmbedding(spec string, V int) (*ts.Tensor, error) {
	src, err := parseSource(spec)
	if err != nil {
		return nil, err
	}
	var t stTensor
	if src.tensor == "" {
		t, err = readNpy(src.path)
	} else {
		t, _, err = readSafetensor(src.path, src.tensor)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", spec, err)
	}
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("load %s: table of shape %v, want [V,D]", spec, t.Shape)
	}
	rows, dim := t.Shape[0], t.Shape[1]
	switch rows {
	case int64(V):
	case int64(V) + 1:
		slog.Info("embedding table has V+1 rows; dropping the last (mask/BOS) row", "source", spec, "V", V)
		t.Data = t.Data[:int64(V)*dim]
	default:
		return nil, fmt.Errorf("load %s: table has %d rows, want V=%d (or V+1)", spec, rows, V)
	}
	f32 := make([]float32, len(t.Data))
	for i, v := range t.Data {
		f32[i] = float32(v)
	}
	return ts.MustOfSlice(f32).MustView([]int64{int64(V), dim}, true), nil
}

var npyHeader = regexp.MustCompile(`'descr':\s*'([^']*)'.*'fortran_order':\s*(True|False).*'shape':\s*\(([^)]*)\)`)

// readNpy reads a little-endian float32 or float64 C-order .npy array.
func readNpy(path string) (stTensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return stTensor{}, err
	}
	r := bytes.NewReader(raw)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic[:6]) != "\x93NUMPY" {
		return stTensor{}, fmt.Errorf("not a .npy file")
	}
	var hlen int
	if magic[6] == 1 {
		var n uint16
		binary.Read(r, binary.LittleEndian, &n)
		hlen = int(n)
	} else {
		var n uint32
		binary.Read(r, binary.LittleEndian, &n)
		hlen = int(n)
	}
	start := len(raw) - r.Len() + hlen
	if start > len(raw) {
		return stTensor{}, fmt.Errorf("truncated .npy header")
	}
	m := npyHeader.FindStringSubmatch(string(raw[len(raw)-r.Len() : start]))
	if m == nil {
		return stTensor{}, fmt.Errorf("unreadable .npy header")
	}
	if m[2] == "True" {
		return stTensor{}, fmt.Errorf(".npy array is Fortran-ordered; save it C-ordered")
	}
	size := map[string]int{"<f4": 4, "<f8": 8}[m[1]]
	if size == 0 {
		return stTensor{}, fmt.Errorf(".npy dtype %s, want <f4 or <f8", m[1])
	}
	var shape []int64
	count := int64(1)
	for _, f := range strings.Split(m[3], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return stTensor{}, fmt.Errorf(".npy shape (%s): %w", m[3], err)
		}
		shape = append(shape, d)
		count *= d
	}
	body := raw[start:]
	if int64(len(body)) != count*int64(size) {
		return stTensor{}, fmt.Errorf(".npy data of %d bytes for shape %v", len(body), shape)
	}
	data := make([]float64, count)
	for i := range data {
		if size == 4 {
			data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])))
		} else {
			data[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))
		}
	}
	return stTensor{Shape: shape, Data: data}, nil
}
