package main

// item is one file a user may need, with where it comes from.
type item struct {
	// Name selects the item on the command line (-only); items sharing a
	// name are fetched together.
	Name string
	// Path is where the file goes, relative to the data folder.
	Path string
	// URL is the file's public home, or an archive holding it as Member.
	URL    string
	Member string // for .zip and .tar.gz archives: the entry's base name
	// SHA256 pins the content; empty means not pinned (printed instead).
	SHA256 string
	// Optional items are fetched only when named (or with -all).
	Optional bool
}

// manifest lists the public files. The default set is what the tests and
// CPU experiments read (the reference data folder's files, less the
// LAMBADA plain text, which needs a 330 MB archive); the rest is optional.
// Pinned hashes are those of the copies in
// the project's reference data folder (its SHA256SUMS), where the public
// file is believed to be byte-identical. The wikitext .raw files are
// unpinned: the reference copy of wiki.test.raw dropped its blank lines and
// so differs from the release archive.
var manifest = []item{
	{Name: "lambada", Path: "lambada/lambada_test.jsonl",
		URL:    "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl",
		SHA256: "4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226"},
	{Name: "tinyshakespeare", Path: "tinyshakespeare/input.txt",
		URL:    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
		SHA256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
	{Name: "warpeace", Path: "warpeace/warpeace_input.txt",
		URL:    "https://cs.stanford.edu/people/karpathy/char-rnn/warpeace_input.txt",
		SHA256: "fb66ba999dafe24017cdd59e04c56d385a9c8466993d374fd4c6f08b2142985e"},
	{Name: "wikitext-2", Path: "wikitext-2/valid.txt",
		URL:    "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/valid.txt",
		SHA256: "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"},
	{Name: "wikitext-2", Path: "wikitext-2/test.txt",
		URL:    "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/test.txt",
		SHA256: "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"},
	{Name: "wikitext-2-raw", Path: "wikitext-2-raw/wiki.test.raw", Member: "wiki.test.raw",
		URL: "https://wikitext.smerity.com/wikitext-2-raw-v1.zip"},
	{Name: "wikitext-2-train", Path: "wikitext-2/train.txt", Optional: true,
		URL: "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/train.txt"},
	{Name: "wikitext-2-train", Path: "wikitext-2-raw/wiki.train.raw", Member: "wiki.train.raw", Optional: true,
		URL: "https://wikitext.smerity.com/wikitext-2-raw-v1.zip"},
	{Name: "wikitext-2-train", Path: "wikitext-2-raw/wiki.valid.raw", Member: "wiki.valid.raw", Optional: true,
		URL: "https://wikitext.smerity.com/wikitext-2-raw-v1.zip"},
	{Name: "wikitext-103-raw", Path: "wikitext-103-raw/wiki.train.raw", Member: "wiki.train.raw", Optional: true,
		URL: "https://wikitext.smerity.com/wikitext-103-raw-v1.zip"},
	{Name: "wikitext-103-raw", Path: "wikitext-103-raw/wiki.valid.raw", Member: "wiki.valid.raw", Optional: true,
		URL: "https://wikitext.smerity.com/wikitext-103-raw-v1.zip"},
	{Name: "wikitext-103-raw", Path: "wikitext-103-raw/wiki.test.raw", Member: "wiki.test.raw", Optional: true,
		URL: "https://wikitext.smerity.com/wikitext-103-raw-v1.zip"},
	{Name: "lambada-plain", Path: "lambada/lambada_test_plain_text.txt", Member: "lambada_test_plain_text.txt", Optional: true,
		URL:    "https://zenodo.org/record/2630551/files/lambada-dataset.tar.gz",
		SHA256: "4ab6062b68422bf2e83653d367c9765d42404f7ec21b8b59b6518b45606aaef2"},
}
