// Package checkpoint stores tensors as one safetensors file: an 8-byte
// little-endian header length N, N bytes of JSON naming each tensor's dtype,
// shape and [begin, end) byte range in the data section (plus a
// "__metadata__" map of strings), then the raw little-endian data. It is the
// format PyTorch users load with safetensors.torch.load_file, and it needs no
// pickle. On top of the standard format this package records a format
// version and the sha256 of the data section in the metadata, so that a
// truncated or corrupted file is refused with an error naming it instead of
// resuming a run from garbage.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/sugarme/gotch"
)

// Metadata keys. Save writes MetaFormat and MetaDataSHA256 itself; the
// trainer writes MetaStep and MetaDataState; the caller of the trainer
// supplies the others.
const (
	MetaFormat     = "format"      // FormatVersion
	MetaDataSHA256 = "data_sha256" // hex sha256 of the data section
	MetaStep       = "step"        // completed optimizer steps
	MetaDataState  = "data_state"  // base64 of the data iterator's state
	MetaConfig     = "config"      // the run's configuration as YAML
	MetaVocabHash  = "vocab_hash"  // hash of the vocabulary mapping
	MetaVocabPath  = "vocab_path"  // where the vocabulary mapping lives
)

// FormatVersion names this layout (namespaced tensors plus the metadata
// above). Files carrying another version are refused.
const FormatVersion = "difflm-checkpoint-1"

// metadataKey is the safetensors header entry that holds the string map.
const metadataKey = "__metadata__"

// maxHeader bounds the JSON header we are willing to read, so that a
// corrupt length field cannot make us allocate gigabytes.
const maxHeader = 100 << 20

// entry is one tensor's description in the header.
type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// encodeHeader returns the length prefix and the JSON header, padded with
// spaces to a multiple of 8 bytes so that the data section is aligned.
func encodeHeader(header map[string]entry, meta map[string]string) ([]byte, error) {
	doc := make(map[string]any, len(header)+1)
	for k, e := range header {
		if e.Shape == nil {
			e.Shape = []int64{} // a scalar has shape [], not null
		}
		doc[k] = e
	}
	doc[metadataKey] = meta
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	body := bytes.TrimRight(js.Bytes(), "\n")
	if pad := len(body) % 8; pad != 0 {
		body = append(body, bytes.Repeat([]byte(" "), 8-pad)...)
	}
	out := make([]byte, 8, 8+len(body))
	binary.LittleEndian.PutUint64(out, uint64(len(body)))
	return append(out, body...), nil
}

// dtypeName maps a libtorch dtype to its safetensors name.
func dtypeName(dt gotch.DType) (string, error) {
	switch dt {
	case gotch.Float:
		return "F32", nil
	case gotch.Double:
		return "F64", nil
	case gotch.Half:
		return "F16", nil
	case gotch.BFloat16:
		return "BF16", nil
	case gotch.Int64:
		return "I64", nil
	case gotch.Int:
		return "I32", nil
	case gotch.Int16:
		return "I16", nil
	case gotch.Int8:
		return "I8", nil
	case gotch.Uint8:
		return "U8", nil
	case gotch.Bool:
		return "BOOL", nil
	}
	return "", fmt.Errorf("dtype %v has no safetensors name", dt)
}

// dtypeOf is the inverse of dtypeName.
func dtypeOf(name string) (gotch.DType, error) {
	for _, dt := range []gotch.DType{gotch.Float, gotch.Double, gotch.Half, gotch.BFloat16, gotch.Int64,
		gotch.Int, gotch.Int16, gotch.Int8, gotch.Uint8, gotch.Bool} {
		if n, _ := dtypeName(dt); n == name {
			return dt, nil
		}
	}
	return gotch.Invalid, fmt.Errorf("unsupported safetensors dtype %q", name)
}
