package results

// Names shared by the writers (training, eval) and the readers (report,
// plots). They are conventions, not an enumeration: the store accepts any task
// or metric name, and the report shows whatever it finds; the plots look for
// these names.
const (
	// Tasks.
	TaskValid     = "valid"     // held-out split of the training corpus
	TaskWikiText2 = "wikitext2" // zero-shot
	TaskLAMBADA   = "lambada"   // zero-shot
	TaskGen       = "gen"       // unconditional generation
	// TaskSamples is the task of quantities the report derives from the
	// samples table (tokens_per_s, model_calls and numeric score keys).
	TaskSamples = "samples"

	// Metrics.
	MetricPPLBound   = "ppl_bound" // exp(NELBO per token): an upper bound on perplexity
	MetricNLL        = "nll"
	MetricBPC        = "bpc"         // the bound in bits per character (per UTF-8 byte for BPE)
	MetricUnigramBPC = "unigram_bpc" // the unigram model's bits per character on a bound's tokens
	MetricAccuracy   = "accuracy"
	// LAMBADA's accuracy over targets the vocabulary can spell, lm-eval's
	// token-level greedy check, and the count of targets holding UNK.
	MetricAccuracyInVocab = "accuracy_in_vocab"
	MetricAccuracyGreedy  = "accuracy_greedy"
	MetricUNKTargets      = "unk_targets"
	MetricGenPPL          = "gen_ppl"      // perplexity of samples under the AR reference, MDLM's protocol
	MetricGenPPLSEDD      = "gen_ppl_sedd" // the same under SEDD's protocol (mean over samples of exp(NLL))
	MetricEntropy         = "entropy"      // mean per-sample unigram entropy of samples (nats)
	MetricUNKShare        = "unk_share"    // share of a bound's tokens that are a trimmed vocabulary's UNK
	MetricUnigramPPL      = "unigram_ppl"  // perplexity of the training split's unigram model on a bound's tokens
	MetricTokensPerS      = "tokens_per_s"
	MetricModelCalls      = "model_calls"
	// TermPrefix + a term name is one term of a bound with named terms
	// (vdm: term_prior, term_diffusion, term_recon), nats per token, from
	// one draw per sequence beside the bound's own.
	TermPrefix = "term_"

	// Parameter keys of evaluations.
	ParamSteps   = "steps"
	ParamSampler = "sampler"

	// MetricLoss is the training metric the loss plot draws by default.
	MetricLoss = "loss"
)

// taskOrder ranks well-known tasks for column order; other tasks follow in
// alphabetical order.
func taskOrder(task string) int {
	switch task {
	case TaskValid:
		return 0
	case TaskWikiText2:
		return 1
	case TaskLAMBADA:
		return 2
	case TaskGen:
		return 3
	case TaskSamples:
		return 5
	}
	return 4
}
