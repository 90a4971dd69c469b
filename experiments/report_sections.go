package main

import (
	"bytes"
	"slices"
	"strings"

	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/results"
)

// termsSection is the breakdown of bounds with named terms (prior,
// diffusion and reconstruction terms, nats per token on the test split)
// for the variants that have them (the continuous row, D3PM): where the
// cost of rounding points back to tokens, or of D3PM's decoder, shows.
// Empty when none has.
func termsSection(store *results.Store, filter results.RunFilter, runs []results.Run) (text, md string, err error) {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	evs, err := store.Evaluations(ids)
	if err != nil {
		return "", "", err
	}
	variantOf := map[int64]string{}
	for _, r := range runs {
		variantOf[r.ID] = r.Variant
	}
	var variants []string
	for _, e := range evs {
		if strings.HasPrefix(e.Metric, results.TermPrefix) && !slices.Contains(variants, variantOf[e.RunID]) {
			variants = append(variants, variantOf[e.RunID])
		}
	}
	if len(variants) == 0 {
		return "", "", nil
	}
	f := filter
	f.Variants = variants
	var cols []results.ColumnFilter
	for _, t := range []string{losses.TermPrior, losses.TermDiffusion, losses.TermRecon} {
		cols = append(cols, results.ColumnFilter{Task: "test", Metric: results.TermPrefix + t})
	}
	cols = append(cols, results.ColumnFilter{Task: "test", Metric: results.MetricNLL})
	return section(store, f, results.ReportOptions{Columns: cols},
		"Terms of the bound on the test split, nats per token (test/nll is the bound itself, from its own draws): term_recon is the decoder's cost at the first step, which is rounding the final point back to a token for the continuous row and −log p̃(x0|x_1) for D3PM, whose network must copy the tokens it sees; term_diffusion is the rest of the chain, term_prior the last step's KL to the prior.")
}

// protocolSection puts the metrics that exist only because two papers'
// codes compute them differently side by side (README, Protocols):
// LAMBADA's string match over all targets, over the targets without UNK,
// and lm-eval's greedy token check, with the UNK targets counted; at the
// largest step count of the generation sweep, generative perplexity under
// MDLM's protocol and SEDD's, and the network calls the sampler took.
// Empty when no run has recorded them (runs evaluated before they
// existed).
func protocolSection(store *results.Store, filter results.RunFilter, genSteps []int) (text, md string, err error) {
	cols := []results.ColumnFilter{
		{Task: results.TaskLAMBADA, Metric: results.MetricAccuracy},
		{Task: results.TaskLAMBADA, Metric: results.MetricAccuracyInVocab},
		{Task: results.TaskLAMBADA, Metric: results.MetricAccuracyGreedy},
		{Task: results.TaskLAMBADA, Metric: results.MetricUNKTargets},
	}
	if n := len(genSteps); n > 0 {
		last := map[string]any{results.ParamSteps: genSteps[n-1]}
		cols = append(cols,
			results.ColumnFilter{Task: results.TaskGen, Metric: results.MetricGenPPL, Params: last},
			results.ColumnFilter{Task: results.TaskGen, Metric: results.MetricGenPPLSEDD, Params: last},
			results.ColumnFilter{Task: results.TaskGen, Metric: results.MetricModelCalls, Params: last})
	}
	tab, err := results.Report(store, filter, results.ReportOptions{Columns: cols, MergeParams: []string{results.ParamSampler}})
	if err != nil {
		return "", "", err
	}
	// Only the columns a run of this database has: all of them for runs
	// evaluated today, none for older ones.
	have := false
	for _, r := range tab.Rows {
		for i, c := range r.Cells {
			m := tab.Columns[i].Metric
			have = have || (c.OK && (m == results.MetricAccuracyGreedy || m == results.MetricGenPPLSEDD))
		}
	}
	if !have {
		return "", "", nil
	}
	return table(tab, "The protocols side by side: LAMBADA accuracy over every passage, over the passages whose target holds no UNK, and as lm-eval's greedy token check, with the number of UNK targets; generative perplexity under MDLM's protocol (gen_ppl) and SEDD's (gen_ppl_sedd), and the network calls per sample (model_calls), at the largest step count.")
}

// section is one extra table of the report under a one-paragraph head.
func section(store *results.Store, filter results.RunFilter, opts results.ReportOptions, head string) (text, md string, err error) {
	tab, err := results.Report(store, filter, opts)
	if err != nil {
		return "", "", err
	}
	return table(tab, head)
}

func table(tab *results.Table, head string) (text, md string, err error) {
	var tb, mb bytes.Buffer
	tb.WriteString("\n" + head + "\n\n")
	mb.WriteString("\n" + head + "\n\n")
	if err := tab.WriteText(&tb); err != nil {
		return "", "", err
	}
	if err := tab.WriteMarkdown(&mb); err != nil {
		return "", "", err
	}
	return tb.String(), mb.String(), nil
}
