package data

// Dataset is one split of a corpus: some of a tokenised corpus's
// documents, in corpus order, in the ids of the corpus's Vocab.
type Dataset struct {
	// Name is train, valid or test.
	Name string
	toks *tokenFile
	docs []int32 // document indices into toks; nil means all
	eos  int32   // the vocabulary's EOS, used by packing
}

// NumDocs is the number of documents.
func (d *Dataset) NumDocs() int {
	if d.docs == nil {
		return d.toks.NumDocs()
	}
	return len(d.docs)
}

func (d *Dataset) span(i int) (start, end int64) {
	if d.docs != nil {
		i = int(d.docs[i])
	}
	return d.toks.Span(i)
}

// NumTokens is the number of tokens, EOS not counted.
func (d *Dataset) NumTokens() int64 {
	if d.docs == nil {
		return d.toks.Len()
	}
	var n int64
	for i := range d.docs {
		s, e := d.span(i)
		n += e - s
	}
	return n
}

// Doc returns the ids of document i (without EOS).
func (d *Dataset) Doc(i int) []int {
	s, e := d.span(i)
	out := make([]int, e-s)
	for k := range out {
		out[k] = int(d.toks.At(s + int64(k)))
	}
	return out
}
