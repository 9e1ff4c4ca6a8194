//! Prefill (pp) and decode (tg) speed of graft and of llama.cpp on the same GGUF model, same
//! threads, same token ids, in one process; prints both and the ratio, as llama-bench measures:
//! pp = one batch of p tokens from an empty cache, tg = n single-token decodes from an empty cache,
//! median of r repetitions after a warm-up.
use graft::model::{KvCache, Logits, Model, Runner, SeqInput};
use llama_cpp_sys_2 as ll;
use std::ffi::CString;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    model: String,
    threads: usize,
    p: usize,
    n: usize,
    reps: usize,
}

fn parse() -> Args {
    let mut a = Args { model: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(), threads: 2, p: 128, n: 64, reps: 5 };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let x = &v[i + 1];
        match v[i].as_str() {
            "-m" => a.model = x.clone(),
            "-t" => a.threads = x.parse().expect("-t"),
            "-p" => a.p = x.parse().expect("-p"),
            "-n" => a.n = x.parse().expect("-n"),
            "-r" => a.reps = x.parse().expect("-r"),
            o => panic!("unknown option {o}"),
        }
        i += 2;
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn graft_bench(a: &Args, toks: &[u32]) -> (f64, f64) {
    let model = Arc::new(Model::load(&a.model).expect("graft: load"));
    let mut r = Runner::new(model.clone(), a.threads);
    let mut c = KvCache::new(&model.config);
    c.reserve(a.p.max(a.n) + 1);
    r.forward(&mut [SeqInput { tokens: &toks[..1], cache: &mut c, logits: Logits::Last }]).unwrap();
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..a.reps {
        c.clear();
        let t0 = Instant::now();
        r.forward(&mut [SeqInput { tokens: &toks[..a.p], cache: &mut c, logits: Logits::Last }]).unwrap();
        pp.push(a.p as f64 / t0.elapsed().as_secs_f64());
        c.clear();
        let t0 = Instant::now();
        for i in 0..a.n {
            r.forward(&mut [SeqInput { tokens: &toks[i..i + 1], cache: &mut c, logits: Logits::Last }]).unwrap();
        }
        tg.push(a.n as f64 / t0.elapsed().as_secs_f64());
    }
    (median(pp), median(tg))
}

fn llama_bench(a: &Args, toks: &[u32]) -> (f64, f64) {
    // SAFETY: plain use of llama.cpp's C API: every pointer comes from the matching constructor, is
    // checked for null, used on this thread only, and freed once at the end; the batch holds
    // capacity for p tokens and we never write past n_tokens <= p.
    unsafe {
        ll::llama_backend_init();
        let path = CString::new(a.model.clone()).unwrap();
        let mp = ll::llama_model_default_params();
        let model = ll::llama_model_load_from_file(path.as_ptr(), mp);
        assert!(!model.is_null(), "llama.cpp: model load failed");
        let mut cp = ll::llama_context_default_params();
        cp.n_ctx = (a.p.max(a.n) + 16) as u32;
        cp.n_batch = a.p.max(1) as u32;
        cp.n_ubatch = a.p.max(1) as u32;
        cp.n_threads = a.threads as i32;
        cp.n_threads_batch = a.threads as i32;
        let ctx = ll::llama_init_from_model(model, cp);
        assert!(!ctx.is_null(), "llama.cpp: context failed");
        let mut batch = ll::llama_batch_init(a.p.max(1) as i32, 0, 1);
        let run = |batch: &mut ll::llama_batch, ids: &[u32], pos0: usize| {
            batch.n_tokens = ids.len() as i32;
            for (i, &t) in ids.iter().enumerate() {
                *batch.token.add(i) = t as i32;
                *batch.pos.add(i) = (pos0 + i) as i32;
                *batch.n_seq_id.add(i) = 1;
                *(*batch.seq_id.add(i)) = 0;
                *batch.logits.add(i) = (i + 1 == ids.len()) as i8;
            }
            assert_eq!(ll::llama_decode(ctx, *batch), 0, "llama_decode failed");
            ll::llama_synchronize(ctx);
        };
        let mem = ll::llama_get_memory(ctx);
        run(&mut batch, &toks[..1], 0);
        let (mut pp, mut tg) = (Vec::new(), Vec::new());
        for _ in 0..a.reps {
            ll::llama_memory_clear(mem, true);
            let t0 = Instant::now();
            run(&mut batch, &toks[..a.p], 0);
            pp.push(a.p as f64 / t0.elapsed().as_secs_f64());
            ll::llama_memory_clear(mem, true);
            let t0 = Instant::now();
            for i in 0..a.n {
                run(&mut batch, &toks[i..i + 1], i);
            }
            tg.push(a.n as f64 / t0.elapsed().as_secs_f64());
        }
        ll::llama_batch_free(batch);
        ll::llama_free(ctx);
        ll::llama_model_free(model);
        (median(pp), median(tg))
    }
}

/// Greedy text of llama.cpp for `prompt` (token ids from graft's tokenizer, equal to llama.cpp's).
fn llama_greedy(model_path: &str, ids: &[u32], n: usize, threads: usize) -> Vec<u32> {
    // SAFETY: as in llama_bench: constructor-checked pointers, one thread, freed at the end; the
    // batch has capacity for the prompt and we never write past it.
    unsafe {
        ll::llama_backend_init();
        let path = CString::new(model_path).unwrap();
        let model = ll::llama_model_load_from_file(path.as_ptr(), ll::llama_model_default_params());
        assert!(!model.is_null());
        let mut cp = ll::llama_context_default_params();
        cp.n_ctx = 512;
        cp.n_threads = threads as i32;
        cp.n_threads_batch = threads as i32;
        let ctx = ll::llama_init_from_model(model, cp);
        let mut batch = ll::llama_batch_init(512, 0, 1);
        let nv = ll::llama_vocab_n_tokens(ll::llama_model_get_vocab(model)) as usize;
        let mut out = Vec::new();
        let mut toks: Vec<u32> = ids.to_vec();
        let mut pos = 0;
        for _ in 0..n {
            let feed = if out.is_empty() { &toks[..] } else { &toks[toks.len() - 1..] };
            batch.n_tokens = feed.len() as i32;
            for (i, &t) in feed.iter().enumerate() {
                *batch.token.add(i) = t as i32;
                *batch.pos.add(i) = (pos + i) as i32;
                *batch.n_seq_id.add(i) = 1;
                *(*batch.seq_id.add(i)) = 0;
                *batch.logits.add(i) = (i + 1 == feed.len()) as i8;
            }
            pos += feed.len();
            assert_eq!(ll::llama_decode(ctx, batch), 0);
            let l = std::slice::from_raw_parts(ll::llama_get_logits_ith(ctx, -1), nv);
            let best = graft::model::sampler::argmax(l);
            let mut s: Vec<usize> = (0..nv).collect();
            s.sort_by(|a, b| l[*b].total_cmp(&l[*a]));
            eprintln!("llama.cpp step {}: top {} {:.5} second {} {:.5}", out.len(), s[0], l[s[0]], s[1], l[s[1]]);
            out.push(best);
            toks.push(best);
            if best == 2 { break; }
        }
        ll::llama_batch_free(batch);
        ll::llama_free(ctx);
        ll::llama_model_free(model);
        out
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("greedy") {
        let path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
        let model = Model::load(path).unwrap();
        let prompt = std::env::args().nth(2).unwrap();
        let ids = model.tokenizer.encode(&prompt, false, false);
        let out = llama_greedy(path, &ids, 32, 2);
        println!("{:?}", String::from_utf8_lossy(&model.tokenizer.decode(&out)));
        return;
    }
    let a = parse();
    let nv = 49152u32;
    let toks: Vec<u32> = (0..a.p.max(a.n).max(1) as u32).map(|i| (i.wrapping_mul(2654435761) >> 7) % nv).collect();
    let (lp, lt) = llama_bench(&a, &toks);
    let (gp, gt) = graft_bench(&a, &toks);
    println!("| engine | pp{} tok/s | tg{} tok/s |", a.p, a.n);
    println!("|---|---|---|");
    println!("| llama.cpp (llama-cpp-sys-2 0.1.161) | {lp:.1} | {lt:.1} |");
    println!("| graft ({}) | {gp:.1} | {gt:.1} |", graft::kernels::selected_isa().name());
    println!("| ratio graft / llama.cpp | {:.2}x | {:.2}x |", gp / lp, gt / lt);
    println!("{}", serde_json::json!({"threads": a.threads, "llama_cpp": {"prefill_tok_s": lp, "decode_tok_s": lt}, "graft": {"prefill_tok_s": gp, "decode_tok_s": gt}, "ratio_prefill": gp / lp, "ratio_decode": gt / lt}));
}
