//! End-to-end checks on the real default model against llama.cpp's and fp32 transformers' figures
//! (../shared/reference/README.md): tokenization, perplexity, greedy generation.
mod common;
use graft::model::generate::{generate, perplexity};
use graft::model::sampler::Sampler;
use graft::model::{KvCache, Logits, Numerics, Runner, SeqInput};

#[test]
fn gpl3_token_ids_equal_llama_cpp() {
    let model = common::default_model();
    let want: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/GPL-3.llama-cpp.ids")).unwrap()).unwrap();
    let got = model.tokenizer.encode(&common::gpl3(), false, false);
    assert_eq!(got.len(), 7639);
    assert_eq!(got, want);
}

/// llama.cpp (8-bit activations): 18.3541; fp32 transformers: 18.3001; the band both span, widened
/// by 0.3% on each side.
#[test]
fn gpl3_perplexity_ctx512_in_reference_band() {
    let model = common::default_model();
    let tokens = model.tokenizer.encode(&common::gpl3(), model.tokenizer.add_bos(), false);
    let mut runner = Runner::new(model, 0);
    let r = perplexity(&mut runner, &tokens, 512, |_, _, _| {}).unwrap();
    let (lo, hi) = (18.3001 * (1.0 - 0.003), 18.3541 * (1.0 + 0.003));
    eprintln!("PPL = {:.4} +/- {:.5} over {} chunks", r.ppl, r.err, r.chunks);
    assert_eq!(r.chunks, 14);
    assert_eq!(r.scored, 14 * 255);
    assert!(r.ppl > lo && r.ppl < hi, "PPL {} outside [{lo}, {hi}]", r.ppl);
}

/// With fp32 numerics graft reproduces transformers' fp32 figure (18.3001) to its four decimals.
#[test]
fn gpl3_perplexity_ctx512_f32_equals_fp32_reference() {
    let model = common::default_model();
    let tokens = model.tokenizer.encode(&common::gpl3(), model.tokenizer.add_bos(), false);
    let mut runner = Runner::with_numerics(model, 0, Numerics::F32);
    let r = perplexity(&mut runner, &tokens, 512, |_, _, _| {}).unwrap();
    eprintln!("fp32 PPL = {:.4} +/- {:.5}", r.ppl, r.err);
    assert!((r.ppl - 18.3001).abs() < 0.0006, "fp32 PPL {} differs from the reference 18.3001", r.ppl);
}

fn greedy(prompt: &str, n: usize, numerics: Numerics) -> String {
    let model = common::default_model();
    let mut runner = Runner::with_numerics(model.clone(), 0, numerics);
    let mut cache = runner.new_cache();
    let ids = model.tokenizer.encode(prompt, false, false);
    let mut out = Vec::new();
    generate(&mut runner, &mut cache, &ids, n, &mut Sampler::new(0.0, 1.0, 0), |t| {
        out.push(t);
        true
    })
    .unwrap();
    String::from_utf8(model.tokenizer.decode(&out)).unwrap()
}

/// With fp32 numerics graft computes what transformers computes on the dequantized weights (only
/// the summation order differs), so its greedy text equals the fp32 reference text, end of sequence
/// included. (llama.cpp's text is not a target here: its 8-bit numerics part ways from fp32 at
/// near-ties, and differ between llama.cpp versions and ISAs; graft's q8 numerics are held to
/// llama.cpp's figures by the perplexity test instead.)
#[test]
fn greedy_output_f32_equals_fp32_reference() {
    let cases = [
        ("The capital of France is", " Paris.\n\nThe answer is: 2018-01-22 12:12:53."),
        (
            "Once upon a time, there was a little robot who",
            " had a special ability to make people happy. He was called \"The Happy One\" by his friends.\n\nOne day, a new friend of The Happy",
        ),
    ];
    for (prompt, want) in cases {
        assert_eq!(greedy(prompt, 32, Numerics::F32), want, "prompt {prompt:?}");
    }
}

/// Several sequences decoding in one batch, each with its own cache, give exactly the logits each
/// gives alone (the batch changes only which rows share a weight pass).
#[test]
fn batched_sequences_match_single_runs() {
    for numerics in [Numerics::Q8, Numerics::F32] {
        let model = common::default_model();
        let mut runner = Runner::with_numerics(model.clone(), 0, numerics);
        let prompts = ["The capital of France is", "Once upon a time", "fn main() {", "a b c d e f"];
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| model.tokenizer.encode(p, false, false)).collect();
        let nv = model.config.n_vocab;
        let mut alone = Vec::new();
        for p in &ids {
            let mut c = runner.new_cache();
            runner.forward(&mut [SeqInput { tokens: p, cache: &mut c, logits: Logits::None }]).unwrap();
            let l = runner.forward(&mut [SeqInput { tokens: &[42], cache: &mut c, logits: Logits::Last }]).unwrap().to_vec();
            alone.push(l);
        }
        let mut caches: Vec<KvCache> = ids.iter().map(|_| runner.new_cache()).collect();
        {
            let mut seqs: Vec<SeqInput> = ids.iter().zip(caches.iter_mut()).map(|(p, c)| SeqInput { tokens: p, cache: c, logits: Logits::None }).collect();
            runner.forward(&mut seqs).unwrap();
        }
        let mut seqs: Vec<SeqInput> = caches.iter_mut().map(|c| SeqInput { tokens: &[42], cache: c, logits: Logits::Last }).collect();
        let batch = runner.forward(&mut seqs).unwrap();
        for (i, a) in alone.iter().enumerate() {
            assert_eq!(&batch[i * nv..(i + 1) * nv], &a[..], "{numerics:?} sequence {i}");
        }
    }
}
