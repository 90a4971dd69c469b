package data

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

// GPT-2 facts: 50257 ids, the last of which is <|endoftext|>.
const (
	gpt2Size = 50257
	gpt2EOS  = 50256
)

const (
	vocabFormat  = "difflm-vocab"
	vocabVersion = 1
)

// Tokenizers (data.tokenizer) name how text becomes ids.
const (
	// TokGPT2 is GPT-2's BPE (r50k), whole or trimmed to a corpus.
	TokGPT2 = "gpt2"
	// TokChar is text8's 27 symbols (space, a–z) after text8 normalisation:
	// ids 0..26 in text8Alphabet order, then EOS = 27.
	TokChar = "char"
	// TokBytes is raw UTF-8 bytes: ids 0..255, then EOS = 256.
	TokBytes = "bytes"
)

var tokenizers = []string{TokGPT2, TokChar, TokBytes}

// Vocab is the token-id space of a run, defined in one place so that models
// and forward processes agree on it. Ids 0..Size()-1 are real tokens (EOS,
// and UNK in a trimmed vocabulary, included); MaskID() == Size() is the
// extra absorbing state, so an absorbing model outputs Size()+1 logits.
//
// The full vocabulary is GPT-2's BPE unchanged. A trimmed vocabulary keeps
// the K most frequent GPT-2 ids of a training corpus (new ids 0..K-1, most
// frequent first), then EOS = K and UNK = K+1; its mapping is saved as JSON
// so that a checkpoint always decodes with the vocabulary it was trained on.
//
// A character vocabulary (TokChar) has the 27 symbols of text8 and EOS, and
// normalises every text it encodes with text8's rules, so LAMBADA, infill
// templates and zero-shot corpora reach it in its own alphabet; a byte
// vocabulary (TokBytes) has the 256 byte values and EOS. Neither has UNK.
type Vocab struct {
	base  string          // TokGPT2, TokChar or TokBytes
	norm  string          // normalisation applied to every text: NormNone or NormText8
	codec tokenizer.Codec // GPT-2 only
	keep  []int32         // trimmed: new id -> GPT-2 id; nil for full GPT-2
	toNew []int32         // trimmed: GPT-2 id -> new id (UNK when not kept)
	hash  string
	file  string // where the mapping was loaded from, for messages
	// unkBytes is the mean UTF-8 length of the GPT-2 tokens a trimmed
	// vocabulary maps to UNK, weighted by their training counts: what one
	// UNK stands for when bits per byte are counted (NaN when unknown).
	unkBytes float64
}

// NewVocab returns the fixed vocabulary of a tokenizer with normalisation
// norm (data.normalize). TokChar requires NormText8: its alphabet holds only
// what that normalisation leaves. A trimmed GPT-2 vocabulary comes from
// TrimVocab instead.
func NewVocab(tok, norm string) (*Vocab, error) {
	if _, err := normalizer(norm); err != nil {
		return nil, err
	}
	if norm == "" {
		norm = NormNone
	}
	var v *Vocab
	switch tok {
	case TokGPT2, "":
		g, err := GPT2Vocab()
		if err != nil {
			return nil, err
		}
		v = g
	case TokChar:
		if norm != NormText8 {
			return nil, fmt.Errorf("tokenizer char needs normalize: text8 (its 27 symbols are what text8 keeps), got %q; use tokenizer bytes for raw text", norm)
		}
		v = &Vocab{base: TokChar}
	case TokBytes:
		v = &Vocab{base: TokBytes}
	default:
		return nil, fmt.Errorf("unknown tokenizer %q (want one of %s)", tok, strings.Join(tokenizers, "|"))
	}
	v.norm = norm
	v.hash = v.computeHash()
	return v, nil
}

// GPT2Vocab returns the full GPT-2 vocabulary (V = 50257, EOS = 50256).
func GPT2Vocab() (*Vocab, error) {
	c, err := tokenizer.Get(tokenizer.R50kBase) // GPT-2's encoding
	if err != nil {
		return nil, fmt.Errorf("gpt-2 tokenizer: %w", err)
	}
	// ErrorModeNone: Decode returns raw bytes (see Decode); Encode cleans
	// its input itself.
	c.SetErrorMode(tokenizer.ErrorModeNone)
	v := &Vocab{base: TokGPT2, norm: NormNone, codec: c}
	v.hash = v.computeHash()
	return v, nil
}

// TrimVocab keeps the k most frequent GPT-2 ids by counts (indexed by GPT-2
// id, as from a tokenised training corpus; ties go to the smaller id) plus
// EOS and UNK. Ids that never occur are not kept, so K may come out smaller
// than k.
func TrimVocab(counts []int64, k int) (*Vocab, error) {
	if k <= 0 || k >= gpt2Size {
		return nil, fmt.Errorf("trim vocabulary: k = %d is outside 1..%d", k, gpt2Size-1)
	}
	if len(counts) != gpt2Size {
		return nil, fmt.Errorf("trim vocabulary: %d counts, want %d", len(counts), gpt2Size)
	}
	return trimVocab(counts, k, NormNone)
}

func trimVocab(counts []int64, k int, norm string) (*Vocab, error) {
	var ids []int32
	for id, n := range counts[:gpt2EOS] {
		if n > 0 {
			ids = append(ids, int32(id))
		}
	}
	slices.SortFunc(ids, func(a, b int32) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	var dropped []int32
	if len(ids) > k {
		ids, dropped = ids[:k], ids[k:]
	}
	v, err := newTrimmed(ids, norm)
	if err != nil {
		return nil, err
	}
	var n, nbytes float64
	for _, id := range dropped {
		piece, _ := v.codec.Decode([]uint{uint(id)})
		n += float64(counts[id])
		nbytes += float64(counts[id]) * float64(len(piece))
	}
	if n > 0 {
		v.unkBytes = nbytes / n
	}
	return v, nil
}

func newTrimmed(keep []int32, norm string) (*Vocab, error) {
	base, err := GPT2Vocab()
	if err != nil {
		return nil, err
	}
	v := &Vocab{base: TokGPT2, norm: norm, codec: base.codec, keep: keep, toNew: make([]int32, gpt2Size), unkBytes: math.NaN()}
	unk := int32(len(keep) + 1)
	for i := range v.toNew {
		v.toNew[i] = unk
	}
	for i, id := range keep {
		if id < 0 || id >= gpt2EOS {
			return nil, fmt.Errorf("kept id %d is not a GPT-2 BPE id", id)
		}
		if v.toNew[id] != unk {
			return nil, fmt.Errorf("GPT-2 id %d is kept twice", id)
		}
		v.toNew[id] = int32(i)
	}
	v.toNew[gpt2EOS] = int32(len(keep))
	v.hash = v.computeHash()
	return v, nil
}

// Size is V, the number of real tokens (EOS and UNK included, MASK not).
func (v *Vocab) Size() int {
	switch {
	case v.base == TokChar:
		return len(text8Alphabet) + 1
	case v.base == TokBytes:
		return 256 + 1
	case v.keep == nil:
		return gpt2Size
	}
	return len(v.keep) + 2
}

// MaskID is the absorbing [MASK] state, V: one past the real tokens.
func (v *Vocab) MaskID() int { return v.Size() }

// EOS is the end-of-document id (also used as BOS and as padding input).
func (v *Vocab) EOS() int {
	switch {
	case v.base != TokGPT2:
		return v.Size() - 1
	case v.keep == nil:
		return gpt2EOS
	}
	return len(v.keep)
}

// Tokenizer is TokGPT2, TokChar or TokBytes.
func (v *Vocab) Tokenizer() string { return v.base }

// Normalization is the normalisation every encoded text goes through.
func (v *Vocab) Normalization() string { return v.norm }

// ByteLens is the UTF-8 length of each id's text, the denominator of bits
// per byte (per character at character level): 1 for a character or byte,
// the piece's length for GPT-2, 0 for EOS (a separator, not text: its
// nats are charged to the bytes around it), the training split's mean
// length of the dropped tokens for UNK (NaN when the vocabulary file does
// not record it), and 0 for MASK.
func (v *Vocab) ByteLens() []float64 {
	out := make([]float64, v.Size()+1)
	for id := range v.Size() {
		switch {
		case id == v.EOS():
		case id == v.UNK():
			out[id] = v.unkBytes
		case v.base != TokGPT2:
			out[id] = 1
		default:
			piece, _ := v.codec.Decode([]uint{uint(v.toGPT2(int32(id)))})
			out[id] = float64(len(piece))
		}
	}
	return out
}

func (v *Vocab) toGPT2(id int32) int32 {
	if v.keep == nil {
		return id
	}
	return v.keep[id]
}

// UNK is the id that stands for GPT-2 tokens a trimmed vocabulary dropped,
// or -1 for the full vocabulary, which has none.
func (v *Vocab) UNK() int {
	if v.keep == nil {
		return -1
	}
	return len(v.keep) + 1
}

// Trimmed reports whether this is a trimmed vocabulary.
func (v *Vocab) Trimmed() bool { return v.keep != nil }

// Hash is a stable id of the mapping (it keys caches and is stored in
// checkpoints).
func (v *Vocab) Hash() string { return v.hash }

// Verify checks that a checkpoint's vocabulary hash is this vocabulary's.
func (v *Vocab) Verify(hash string) error {
	if hash == v.hash {
		return nil
	}
	return fmt.Errorf("vocabulary mismatch: the checkpoint was trained with vocabulary %s but the data pipeline uses %s (%s); "+
		"set data.vocab_file to the checkpoint's vocabulary file", hash, v.hash, v.describe())
}

func (v *Vocab) describe() string {
	s := fmt.Sprintf("GPT-2, V=%d", v.Size())
	switch {
	case v.base == TokChar:
		s = fmt.Sprintf("text8 characters, V=%d", v.Size())
	case v.base == TokBytes:
		s = fmt.Sprintf("bytes, V=%d", v.Size())
	case v.keep != nil:
		s = fmt.Sprintf("GPT-2 trimmed to K=%d, V=%d", len(v.keep), v.Size())
	}
	if v.norm != NormNone {
		s += ", normalize " + v.norm
	}
	if v.file != "" {
		s += ", from " + v.file
	}
	return s
}

// Encode normalises text and tokenises it into ids of this vocabulary (no
// EOS added).
func (v *Vocab) Encode(text string) []int {
	ids := v.encodeBase(nil, v.Normalize(text))
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(v.fromGPT2(id))
	}
	return out
}

// Normalize applies the vocabulary's normalisation to text.
func (v *Vocab) Normalize(text string) string {
	if v.norm == NormText8 {
		return Text8Normalize(text)
	}
	return text
}

// encodeBase appends the base ids (GPT-2 ids before trimming; the final ids
// for characters and bytes) of already normalised text to dst.
func (v *Vocab) encodeBase(dst []int32, text string) []int32 {
	// Sources reject invalid UTF-8 with a file:line error before this
	// point; for direct callers it becomes U+FFFD, as in tiktoken.
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	return v.newEncoder().append(dst, text)
}

// basePiece is the text of a base id (see encodeBase).
func (v *Vocab) basePiece(id int32) string {
	switch v.base {
	case TokChar:
		return text8Alphabet[id : id+1]
	case TokBytes:
		return string([]byte{byte(id)})
	}
	piece, _ := v.codec.Decode([]uint{uint(id)})
	return piece
}

// codecIDs appends the ids the tiktoken codec gives text.
func (v *Vocab) codecIDs(dst []int32, text string) []int32 {
	// The codec only fails on a regexp timeout, and none is set.
	ids, _, _ := v.codec.Encode(text)
	for _, id := range ids {
		dst = append(dst, int32(id))
	}
	return dst
}

func (v *Vocab) fromGPT2(id int32) int32 {
	if v.toNew == nil {
		return id
	}
	return v.toNew[id]
}

// Decode turns ids back into text. EOS, UNK and MASK render as
// <|endoftext|>, <|unk|> and <|mask|>, other out-of-range ids as
// <|invalid|>. Bytes are not forced into valid UTF-8, so decoding a
// sequence piecewise and joining equals decoding it whole.
func (v *Vocab) Decode(ids []int) string {
	var sb strings.Builder
	var run []uint
	flush := func() {
		if len(run) > 0 {
			s, _ := v.codec.Decode(run) // every id below EOS has a piece
			sb.WriteString(s)
			run = run[:0]
		}
	}
	for _, id := range ids {
		switch {
		case id < 0 || id > v.MaskID():
			flush()
			sb.WriteString("<|invalid|>")
		case id == v.EOS():
			flush()
			sb.WriteString("<|endoftext|>")
		case id == v.UNK():
			flush()
			sb.WriteString("<|unk|>")
		case id == v.MaskID():
			flush()
			sb.WriteString("<|mask|>")
		case v.base == TokChar:
			flush()
			sb.WriteByte(text8Alphabet[id])
		case v.base == TokBytes:
			flush()
			sb.WriteByte(byte(id))
		case v.keep != nil:
			run = append(run, uint(v.keep[id]))
		default:
			run = append(run, uint(id))
		}
	}
	flush()
	return sb.String()
}

func (v *Vocab) computeHash() string {
	h := sha256.New()
	if v.base != TokGPT2 || v.norm != NormNone {
		// Older GPT-2 vocabularies hashed without these fields; their hash
		// (which keys caches and checkpoints) stays as it was.
		fmt.Fprintf(h, "%s/v%d;%s;normalize=%s;size=%d;", vocabFormat, vocabVersion, v.base, v.norm, v.Size())
		if v.keep != nil {
			h.Write([]byte("trimmed;"))
			_ = binary.Write(h, binary.LittleEndian, v.keep)
		}
		return hex.EncodeToString(h.Sum(nil))[:16]
	}
	fmt.Fprintf(h, "%s/v%d;gpt2-r50k;size=%d;", vocabFormat, vocabVersion, v.Size())
	if v.keep != nil {
		h.Write([]byte("trimmed;"))
		_ = binary.Write(h, binary.LittleEndian, v.keep)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// vocabFile is the saved form of a Vocab. Version bumps whenever the meaning
// of a field changes; LoadVocab refuses versions it does not know.
type vocabFile struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Base    string `json:"base"` // the tokenizer: gpt2, char or bytes
	// Normalize is the normalisation of every encoded text ("" = none).
	Normalize string  `json:"normalize,omitempty"`
	Size      int     `json:"size"`
	EOS       int     `json:"eos"`
	UNK       int     `json:"unk"`
	Mask      int     `json:"mask"`
	Hash      string  `json:"hash"`
	GPT2IDs   []int32 `json:"gpt2_ids,omitempty"` // new id -> GPT-2 id, for ids below EOS
	// UNKBytes is Vocab.unkBytes (absent when unknown).
	UNKBytes *float64 `json:"unk_bytes,omitempty"`
}

// Save writes the mapping as JSON (atomically: a temporary file is renamed).
func (v *Vocab) Save(path string) error {
	f := vocabFile{Format: vocabFormat, Version: vocabVersion, Base: v.base,
		Size: v.Size(), EOS: v.EOS(), UNK: v.UNK(), Mask: v.MaskID(), Hash: v.hash, GPT2IDs: v.keep}
	if v.norm != NormNone {
		f.Normalize = v.norm
	}
	if v.keep != nil && !math.IsNaN(v.unkBytes) {
		f.UNKBytes = &v.unkBytes
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("save vocabulary %s: %w", path, err)
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save vocabulary %s: %w", path, err)
	}
	return nil
}

// LoadVocab reads a mapping saved by Save and checks it is self-consistent
// (its stored hash must match its content).
func LoadVocab(path string) (*Vocab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load vocabulary: %w", err)
	}
	var f vocabFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("load vocabulary %s: %w", path, err)
	}
	bad := func(format string, args ...any) (*Vocab, error) {
		return nil, fmt.Errorf("load vocabulary %s: %s", path, fmt.Sprintf(format, args...))
	}
	if f.Format != vocabFormat || !slices.Contains(tokenizers, f.Base) {
		return bad("not a %s file of a known tokenizer (format %q, base %q)", vocabFormat, f.Format, f.Base)
	}
	if f.Version != vocabVersion {
		return bad("version %d is not supported (this build reads version %d)", f.Version, vocabVersion)
	}
	norm := cmp.Or(f.Normalize, NormNone)
	var v *Vocab
	switch {
	case f.GPT2IDs != nil && f.Base == TokGPT2:
		v, err = newTrimmed(f.GPT2IDs, norm)
		if err == nil && f.UNKBytes != nil {
			v.unkBytes = *f.UNKBytes
		}
	case f.GPT2IDs != nil:
		return bad("gpt2_ids given for tokenizer %s", f.Base)
	default:
		v, err = NewVocab(f.Base, norm)
	}
	if err != nil {
		return bad("%v", err)
	}
	if f.Size != v.Size() || f.EOS != v.EOS() || f.UNK != v.UNK() || f.Mask != v.MaskID() {
		return bad("size/eos/unk/mask %d/%d/%d/%d do not fit %d kept ids", f.Size, f.EOS, f.UNK, f.Mask, len(f.GPT2IDs))
	}
	if f.Hash != v.hash {
		return bad("stored hash %s does not match its content (%s): the file was edited or is corrupt", f.Hash, v.hash)
	}
	v.file = path
	return v, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it, so readers never see a half-written file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
