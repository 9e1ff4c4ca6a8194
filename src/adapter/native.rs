//! An adapter in its method's own parameters (what files store and training updates), and its
//! compilation into runtime [`Term`](super::Term)s for one base model.
//!
//! Tensor names: `blk.<layer>.<linear>.<param>` with `<linear>` the GGUF name (`attn_q`, ...),
//! and `shared.<param>` for tensors shared by all layers (VeRA's projections, ...).
use super::methods::dora::DoraLayer;
use super::methods::lora::LoraLayer;
use super::methods::blocklora::BlockLoraLayer;
use super::methods::lamda::LamdaLayer;
use super::methods::lokr::LokrLayer;
use super::methods::loldu::LolduLayer;
use super::methods::loraxs::LoraXsLayer;
use super::methods::lorta::{LortaLayer, LortaShared};
use super::methods::miss::MissLayer;
use super::methods::nola::NolaLayer;
use super::methods::randlora::{RandLoraLayer, RandLoraShared};
use super::methods::vera::VeraLayer;
use super::methods::{Hyper, LayerMethod, Tensors};
use super::factor::Factor;
use super::term::VeraShared;
use super::Adapter;
use crate::kernels::quant;
use crate::model::{LinearKind, Model};
use crate::{Error, Result};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Method names graft's files may record.
pub const METHODS: &[&str] =
    &["lora", "rslora", "ffa-lora", "dora", "vera", "lora-xs", "lora-sb", "loldu", "nola", "randlora", "miss", "bone", "lokr", "lamda", "block-lora", "lorta"];

/// An adapter's native parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeAdapter {
    /// Method name (`lora`, `rslora`, `dora`, `vera`, ...).
    pub method: String,
    /// Hyper-parameters (strings, as files record them).
    pub hyper: Hyper,
    /// Fingerprint of the base it was made for, if known.
    pub base_fingerprint: Option<String>,
    /// The tensors.
    pub tensors: Tensors,
    /// Where it came from (for errors).
    pub source: String,
}

/// The (block, projection) pairs that have tensors, from `blk.<l>.<linear>.<param>` names.
pub fn targets(t: &Tensors, file: &str) -> Result<BTreeSet<(usize, LinearKind)>> {
    let mut out = BTreeSet::new();
    for name in t.keys() {
        if name.starts_with("shared.") {
            continue;
        }
        let parsed = (|| {
            let rest = name.strip_prefix("blk.")?;
            let (l, rest) = rest.split_once('.')?;
            let (lin, _param) = rest.split_once('.')?;
            let kind = LinearKind::ALL.into_iter().find(|k| k.gguf_name() == lin)?;
            Some((l.parse::<usize>().ok()?, kind))
        })();
        out.insert(parsed.ok_or_else(|| Error::format(file, name, "not blk.<layer>.<linear>.<param> or shared.<param>"))?);
    }
    Ok(out)
}

impl NativeAdapter {
    /// As [`NativeAdapter::build`], consuming the tensors: LoRA-family factors move into their
    /// terms without copies, and the per-layer work (checks, transposing `B`) runs on two threads.
    pub fn into_adapter(mut self, name: &str, model: &Model) -> Result<Adapter> {
        if !matches!(self.method.as_str(), "lora" | "rslora" | "ffa-lora") {
            return self.build(name, model);
        }
        let file = self.source.clone();
        let tg = targets(&self.tensors, &file)?;
        let n_layers = model.weights.blocks.len();
        let rslora = self.hyper.get("rslora").is_some_and(|v| v == "true") || self.method == "rslora";
        let hf_rows = match self.hyper.get("qk_rows").map(String::as_str) {
            None | Some("gguf") => false,
            Some("hf") => true,
            Some(v) => return Err(Error::format(&file, "qk_rows", format!("{v:?}, expected \"hf\" or \"gguf\""))),
        };
        let mut jobs = Vec::with_capacity(tg.len());
        for &(l, kind) in &tg {
            let prefix = format!("blk.{l}.{}", kind.gguf_name());
            if l >= n_layers {
                return Err(Error::model(&file, &prefix, format!("block {l}, the model has {n_layers}")));
            }
            let w = model.weights.blocks[l].linear(kind);
            let mut take = |p: &str| self.tensors.remove(&format!("{prefix}.{p}")).ok_or_else(|| Error::format(&file, format!("{prefix}.{p}"), "missing tensor"));
            let (sa, a) = take("lora_a")?;
            let (sb, b) = take("lora_b")?;
            let r = sa.first().copied().unwrap_or(0);
            if r == 0 || sa != [r, w.n_in] {
                return Err(Error::format(&file, format!("{prefix}.lora_a"), format!("shape {sa:?}, expected [r, {}]", w.n_in)));
            }
            if sb != [w.n_out, r] {
                return Err(Error::format(&file, format!("{prefix}.lora_b"), format!("shape {sb:?}, expected [{}, {r}]", w.n_out)));
            }
            let bias = self.tensors.remove(&format!("{prefix}.lora_bias"));
            if let Some((sbias, _)) = &bias {
                if sbias != &[w.n_out] {
                    return Err(Error::format(&file, format!("{prefix}.lora_bias"), format!("shape {sbias:?}, expected [{}]", w.n_out)));
                }
            }
            let heads = match kind {
                LinearKind::Q if hf_rows => model.config.n_head,
                LinearKind::K if hf_rows => model.config.n_head_kv,
                _ => 0,
            };
            let alpha: f64 = super::methods::hyper_get(&self.hyper, &super::methods::layer_key(&self.hyper, "alpha", &prefix), &file)?;
            jobs.push((l, kind, prefix, r, w.n_in, w.n_out, a, b, bias.map(|(_, v)| v), heads, LoraLayer::scale_for(alpha, r, rslora)));
        }
        if let Some(k) = self.tensors.keys().next() {
            return Err(Error::format(&file, k, format!("not a parameter of {}", self.method)));
        }
        // Two threads share the checks, transposes and quantization.
        #[allow(clippy::type_complexity)]
        let convert = |(l, kind, prefix, r, ni, no, a, b, bias, heads, scale): (usize, LinearKind, String, usize, usize, usize, Factor, Factor, Option<Factor>, usize, f32)| -> Result<(usize, LinearKind, super::Term, usize, Option<super::term::LowRankQ8>, Option<Vec<f32>>)> {
            for (v, p) in [(&a[..], "lora_a"), (&b[..], "lora_b"), (bias.as_deref().unwrap_or(&[]), "lora_bias")] {
                if !super::term::all_finite(v) {
                    let i = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
                    return Err(Error::format(&file, format!("{prefix}.{p}"), format!("non-finite value at element {i}")));
                }
            }
            let params = a.len() + b.len() + bias.as_ref().map_or(0, |v| v.len());
            let mut bias = bias.map(|v| output_bias(&v, scale));
            // Factors that are views of the file's map stay there: `A` as it is, `Bᵀ` made on
            // first read (see `factor`). Rows permuted for q/k (PEFT's layout) need copies.
            let lr = match if heads == 0 { b.transposed_view(no, r) } else { Err(b) } {
                Ok(bt) => super::LowRank { r, n_in: ni, n_out: no, a, bt, scale },
                Err(b) => {
                    let mut lr = super::LowRank::from_a_b_vec(r, ni, no, a, b.into_vec(), scale);
                    if heads > 0 {
                        let perm = qk_perm(no, heads);
                        let old = lr.bt.to_vec();
                        let bt: &mut [f32] = &mut lr.bt;
                        for j in 0..r {
                            for (g, &h) in perm.iter().enumerate() {
                                bt[j * no + g] = old[j * no + h];
                            }
                        }
                        bias = bias.map(|v| perm.iter().map(|&h| v[h]).collect());
                    }
                    lr
                }
            };
            let q8 = super::term::LowRankQ8::of(&lr);
            Ok((l, kind, super::Term::LowRank(lr), params, q8, bias))
        };
        let converted = crate::pool::map_two(jobs, convert);
        let mut ad = Adapter::empty(name, &self.method, &file, n_layers);
        ad.hyper = std::mem::take(&mut self.hyper);
        ad.base_fingerprint = self.base_fingerprint.take();
        ad.q8 = (0..n_layers).map(|_| Default::default()).collect();
        let ffa = ad.method == "ffa-lora";
        for res in converted {
            let (l, kind, term, params, q8, bias) = res?;
            // FFA-LoRA trains only B (A stays at its random init).
            ad.trainable_params += if ffa { term.n_out() * term.rank() } else { params };
            ad.layers[l][kind as usize] = Some(term);
            ad.q8[l][kind as usize] = q8;
            if let Some(b) = bias {
                ad.set_bias(l, kind, b);
            }
        }
        ad.check_fits_shapes(model)?;
        Ok(ad)
    }

    /// Trainable parameters and runtime terms for `model`. Errors name the file and tensor.
    pub fn build(&self, name: &str, model: &Model) -> Result<Adapter> {
        let file = &self.source;
        let n_layers = model.weights.blocks.len();
        let mut ad = Adapter::empty(name, &self.method, file, n_layers);
        ad.hyper = self.hyper.clone();
        ad.base_fingerprint = self.base_fingerprint.clone();
        let tg = targets(&self.tensors, file)?;
        if tg.is_empty() {
            return Err(Error::format(file, "tensors", "no adapted layer"));
        }
        // Shared projections not saved (PEFT's save_projection=False) are regenerated from the key,
        // the rank, and the widest input and output of the targeted layers: (key, r, max_in, max_out).
        let regen = || -> Result<(u64, usize, usize, usize)> {
            let key: u64 = super::methods::hyper_get(&self.hyper, "projection_prng_key", file)?;
            let r: usize = super::methods::hyper_get(&self.hyper, "r", file)?;
            let (mut max_in, mut max_out) = (0, 0);
            for &(l, kind) in &tg {
                if let Some(b) = model.weights.blocks.get(l) {
                    max_in = max_in.max(b.linear(kind).n_in);
                    max_out = max_out.max(b.linear(kind).n_out);
                }
            }
            Ok((key, r, max_in, max_out))
        };
        let vera_shared = if self.method != "vera" {
            None
        } else if self.tensors.contains_key("shared.vera_A") || !self.hyper.contains_key("projection_prng_key") {
            Some(Arc::new(VeraShared::load(&self.tensors, file)?))
        } else {
            // As PEFT does.
            let (key, r, max_in, max_out) = regen()?;
            if r == 0 || r > 65536 {
                return Err(Error::format(file, "r", format!("VeRA rank {r}")));
            }
            Some(Arc::new(VeraShared::generate(r, max_in, max_out, key)))
        };
        let randlora_shared = if self.method != "randlora" {
            None
        } else if self.tensors.contains_key("shared.randlora_a") || !self.hyper.contains_key("projection_prng_key") {
            Some(Arc::new(RandLoraShared::load(&self.tensors, file)?))
        } else {
            // Not saved (PEFT's save_projection=False): regenerate from the key over the element-wise
            // largest (n_out, n_in) of the targeted layers, as PEFT's `_find_dim`: the dense bases in
            // bf16 (PEFT's format wherever `accelerate` reports bf16 support, which every current
            // torch CPU does), the sparse ones (hyper-parameter `randlora_bases`) in fp32.
            let (key, r, max_in, max_out) = regen()?;
            if r == 0 || r > max_in.min(max_out).max(1) {
                return Err(Error::format(file, "r", format!("RandLoRA rank {r} for layers of at most {max_out}x{max_in}")));
            }
            Some(Arc::new(match self.hyper.get("randlora_bases").map(String::as_str) {
                None | Some("dense") => RandLoraShared::generate(r, max_out, max_in, key as u32, super::rng::Rounding::Bf16),
                Some("sparse") => RandLoraShared::generate_sparse(r, max_out, max_in, key as u32, false),
                Some("very_sparse") => RandLoraShared::generate_sparse(r, max_out, max_in, key as u32, true),
                Some(v) => return Err(Error::format(file, "randlora_bases", format!("{v:?} (dense, sparse or very_sparse)"))),
            }))
        };
        let lorta_shared = if self.method == "lorta" { Some(Arc::new(LortaShared::load(&self.tensors, &self.hyper, file)?)) } else { None };
        // PEFT files keep attn_q / attn_k rows in the HF order; GGUF permutes them for its RoPE.
        let hf_rows = match self.hyper.get("qk_rows").map(String::as_str) {
            None | Some("gguf") => false,
            Some("hf") => true,
            Some(v) => return Err(Error::format(file, "qk_rows", format!("{v:?}, expected \"hf\" or \"gguf\""))),
        };
        let mut perm_cache: Vec<(usize, Arc<VeraShared>)> = Vec::new();
        for &(l, kind) in &tg {
            let prefix = format!("blk.{l}.{}", kind.gguf_name());
            if l >= n_layers {
                return Err(Error::model(file, &prefix, format!("block {l}, the model has {n_layers}")));
            }
            let w = model.weights.blocks[l].linear(kind);
            let (ni, no) = (w.n_in, w.n_out);
            let (term, params) = match self.method.as_str() {
                "lora" | "rslora" | "ffa-lora" => one::<LoraLayer>(&prefix, self, ni, no)?,
                "dora" => {
                    let mut d = DoraLayer::load(&prefix, &self.tensors, &self.hyper, ni, no, file)?;
                    let mut w0 = dequantize(model, l, kind)?;
                    // The factors are in HF row order here (permuted after): bind to W0 in that order.
                    let heads = match kind {
                        LinearKind::Q => model.config.n_head,
                        LinearKind::K => model.config.n_head_kv,
                        _ => 0,
                    };
                    if hf_rows && heads > 0 {
                        let g = w0.clone();
                        for (gi, &h) in qk_perm(no, heads).iter().enumerate() {
                            w0[h * ni..(h + 1) * ni].copy_from_slice(&g[gi * ni..(gi + 1) * ni]);
                        }
                    }
                    d.bind(&w0);
                    (d.to_term(), d.trainable_params())
                }
                "vera" => {
                    let v = VeraLayer::load_with(vera_shared.clone().unwrap(), &prefix, &self.tensors, ni, no, file)?;
                    (v.to_term(), v.trainable_params())
                }
                "loraxs" | "lora-xs" | "lora-sb" => one::<LoraXsLayer>(&prefix, self, ni, no)?,
                "loldu" => one::<LolduLayer>(&prefix, self, ni, no)?,
                "nola" => one::<NolaLayer>(&prefix, self, ni, no)?,
                "miss" | "bone" => one::<MissLayer>(&prefix, self, ni, no)?,
                "lokr" => one::<LokrLayer>(&prefix, self, ni, no)?,
                "lamda" => one::<LamdaLayer>(&prefix, self, ni, no)?,
                "blocklora" | "block-lora" => one::<BlockLoraLayer>(&prefix, self, ni, no)?,
                "randlora" => {
                    let m = RandLoraLayer::load_with(randlora_shared.clone().unwrap(), &prefix, &self.tensors, &self.hyper, ni, no, file)?;
                    (m.to_term(), m.trainable_params())
                }
                "lorta" => {
                    let m = LortaLayer::load_with(lorta_shared.clone().unwrap(), &prefix, &self.tensors, ni, no, file)?;
                    (m.to_term(), m.trainable_params())
                }
                m => return Err(Error::format(file, "method", format!("unknown adapter method {m:?} (graft knows {})", METHODS.join(", ")))),
            };
            let term = match (hf_rows, kind) {
                (true, LinearKind::Q) => permute_rows(term, model.config.n_head, &mut perm_cache),
                (true, LinearKind::K) => permute_rows(term, model.config.n_head_kv, &mut perm_cache),
                _ => term,
            };
            ad.trainable_params += if self.method == "ffa-lora" { term.n_out() * term.rank() } else { params };
            let bias_name = format!("{prefix}.lora_bias");
            if self.tensors.contains_key(&bias_name) {
                if !matches!(self.method.as_str(), "lora" | "rslora" | "ffa-lora") {
                    return Err(Error::format(file, &bias_name, format!("not a parameter of {}", self.method)));
                }
                let super::Term::LowRank(lr) = &term else { unreachable!("LoRA builds low-rank terms") };
                let mut b = output_bias(&super::methods::take(&self.tensors, &bias_name, &[no], file)?, lr.scale);
                if hf_rows && matches!(kind, LinearKind::Q | LinearKind::K) {
                    let heads = if kind == LinearKind::Q { model.config.n_head } else { model.config.n_head_kv };
                    b = qk_perm(no, heads).iter().map(|&h| b[h]).collect();
                }
                ad.trainable_params += no;
                ad.set_bias(l, kind, b);
            }
            ad.layers[l][kind as usize] = Some(term);
        }
        ad.check_fits(model)?;
        ad.prepare_q8();
        if self.method == "vera" {
            vera_q8(&mut ad);
        }
        Ok(ad)
    }
}

/// Gives every VeRA term shared projections with Q8_0 copies (one quantization per distinct
/// shared matrix; the row-permuted q/k variants get their own).
fn vera_q8(ad: &mut Adapter) {
    use super::Term;
    let mut n_ins: Vec<usize> = ad.layers.iter().flatten().flatten().map(|t| t.n_in()).collect();
    n_ins.sort();
    n_ins.dedup();
    let mut done: Vec<(*const VeraShared, Arc<VeraShared>)> = Vec::new();
    for t in ad.layers.iter_mut().flatten().flatten() {
        if let Term::Vera(v) = t {
            let key = Arc::as_ptr(&v.shared);
            let q = match done.iter().find(|(k, _)| *k == key) {
                Some((_, q)) => q.clone(),
                None => {
                    let q = Arc::new(v.shared.with_q8(&n_ins));
                    done.push((key, q.clone()));
                    q
                }
            };
            v.shared = q;
        }
    }
}

/// PEFT's `lora_bias` `b` as the output bias the runtime adds: `s·b` (PEFT computes
/// `lora_B(lora_A(x))·s`, bias included).
fn output_bias(b: &[f32], s: f32) -> Vec<f32> {
    b.iter().map(|v| v * s).collect()
}

/// For each GGUF row of a projection with `n_heads` heads of `n_out / n_heads` rows, the HF row
/// it comes from: llama.cpp's converter interleaves the two halves of each head (for its RoPE).
pub fn qk_perm(n_out: usize, n_heads: usize) -> Vec<usize> {
    let hd = n_out / n_heads;
    let half = hd / 2;
    let mut p = vec![0usize; n_out];
    for h in 0..n_heads {
        for i in 0..half {
            for s in 0..2 {
                p[h * hd + 2 * i + s] = h * hd + s * half + i;
            }
        }
    }
    p
}

/// The term with its output rows reordered from HF to GGUF order (`out[g] = in[perm[g]]`).
fn permute_rows(term: super::Term, n_heads: usize, cache: &mut Vec<(usize, Arc<VeraShared>)>) -> super::Term {
    use super::Term;
    let perm = qk_perm(term.n_out(), n_heads);
    let cols = |bt: &[f32], ld: usize, r: usize| -> Vec<f32> {
        let mut out = bt.to_vec();
        for j in 0..r {
            for (g, &h) in perm.iter().enumerate() {
                out[j * ld + g] = bt[j * ld + h];
            }
        }
        out
    };
    let vec = |v: &[f32]| -> Vec<f32> { perm.iter().map(|&h| v[h]).collect() };
    match term {
        Term::LowRank(mut t) => {
            t.bt = cols(&t.bt, t.n_out, t.r).into();
            Term::LowRank(t)
        }
        Term::Dora(mut t) => {
            t.lora.bt = cols(&t.lora.bt, t.lora.n_out, t.lora.r).into();
            t.c = vec(&t.c);
            Term::Dora(t)
        }
        Term::Vera(mut t) => {
            // B̂ is the first n_out rows of the shared B: a permuted copy per (n_out, heads), sharing A.
            let key = t.n_out * 1_000_003 + n_heads;
            let sh = match cache.iter().find(|(k, _)| *k == key) {
                Some((_, s)) => s.clone(),
                None => {
                    let mut s = (*t.shared).clone();
                    let permuted = cols(&s.bt, s.max_out, s.r);
                    s.bt = permuted;
                    let s = Arc::new(s);
                    cache.push((key, s.clone()));
                    s
                }
            };
            t.shared = sh;
            t.lambda_b = vec(&t.lambda_b);
            Term::Vera(t)
        }
        Term::MissBat(mut t) => {
            // Its blocks follow the HF rows: keep them, and record each GGUF row's HF row.
            let prev: Vec<usize> = (0..t.n_out).map(|o| t.hf(o)).collect();
            t.hf_row = Some(perm.iter().map(|&h| prev[h] as u32).collect());
            Term::MissBat(t)
        }
    }
}

fn one<M: LayerMethod>(prefix: &str, n: &NativeAdapter, ni: usize, no: usize) -> Result<(super::Term, usize)> {
    let m = M::load(prefix, &n.tensors, &n.hyper, ni, no, &n.source)?;
    Ok((m.to_term(), m.trainable_params()))
}

/// The base weight of block `l`'s projection `kind`, dequantized to f32 (`[n_out, n_in]`).
pub fn dequantize(model: &Model, l: usize, kind: LinearKind) -> Result<Vec<f32>> {
    let w = model.weights.blocks[l].linear(kind);
    let bytes = model.bytes(w);
    let rb = w.row_bytes();
    let mut out = vec![0f32; w.n_in * w.n_out];
    let kq = quant::selected();
    for r in 0..w.n_out {
        kq.dequantize_row(w.ty, &bytes[r * rb..(r + 1) * rb], &mut out[r * w.n_in..(r + 1) * w.n_in])?;
    }
    Ok(out)
}

impl NativeAdapter {
    /// The same adapter with `attn_q` / `attn_k` output rows in `target` order (`hf` or `gguf`),
    /// for a model with `n_head` query and `n_head_kv` key heads. VeRA's shared `B` cannot be
    /// reordered for two projections only, so VeRA stays in HF order (its files always are).
    pub fn with_qk_rows(&self, target: &str, n_head: usize, n_head_kv: usize) -> Result<NativeAdapter> {
        let cur = self.hyper.get("qk_rows").map_or("gguf", String::as_str);
        if cur == target {
            return Ok(self.clone());
        }
        if self.method == "vera" {
            return Err(Error::invalid("adapter convert", "VeRA's shared projections are kept in HF row order"));
        }
        let mut out = self.clone();
        out.hyper.insert("qk_rows".into(), target.into());
        for (name, (shape, v)) in out.tensors.iter_mut() {
            let heads = if name.contains(".attn_q.") {
                n_head
            } else if name.contains(".attn_k.") {
                n_head_kv
            } else {
                continue;
            };
            // Tensors whose leading dimension is the projection's output rows.
            let is_rows = name.ends_with(".lora_b") || name.ends_with(".lora_bias") || name.ends_with(".magnitude");
            if !is_rows {
                if matches!(self.method.as_str(), "lora" | "rslora" | "ffa-lora" | "dora") {
                    continue; // lora_a: input side, not permuted.
                }
                return Err(Error::invalid("adapter convert", format!("{name}: reordering rows of {} tensors is not supported", self.method)));
            }
            let n_out = shape[0];
            let row = v.len() / n_out.max(1);
            let perm = qk_perm(n_out, heads);
            let old = v.clone();
            for (g, &h) in perm.iter().enumerate() {
                let (dst, src) = if target == "gguf" { (g, h) } else { (h, g) };
                v[dst * row..(dst + 1) * row].copy_from_slice(&old[src * row..(src + 1) * row]);
            }
        }
        Ok(out)
    }
}

/// The adapter's terms folded into plain LoRA factors (GGUF row order, scale folded into `B`), for
/// GGUF LoRA export. DoRA does not fold (its magnitude rescales the base) and is refused, and so
/// is an output bias (llama.cpp's LoRA format has no place for one).
pub fn fold_to_lora(ad: &Adapter) -> Result<Vec<(usize, LinearKind, LoraLayer)>> {
    use super::Term;
    let mut out = Vec::new();
    for (l, blk) in ad.layers.iter().enumerate() {
        for kind in LinearKind::ALL {
            let Some(t) = &blk[kind as usize] else { continue };
            if ad.bias(l, kind).is_some() {
                let name = format!("blk.{l}.{}.lora_bias", kind.gguf_name());
                return Err(Error::format(&ad.source, name, "an output bias (PEFT lora_bias), which a GGUF LoRA cannot hold: export to peft or graft instead"));
            }
            let layer = match t {
                Term::LowRank(lr) => LoraLayer { r: lr.r, n_in: lr.n_in, n_out: lr.n_out, a: lr.a.to_vec(), b: lr.b().iter().map(|v| v * lr.scale).collect(), scale: 1.0 },
                Term::Vera(v) => {
                    let sh = &v.shared;
                    let (r, ni, no) = (sh.r, v.n_in, v.n_out);
                    let mut a = vec![0f32; r * ni];
                    let mut b = vec![0f32; no * r];
                    for j in 0..r {
                        for i in 0..ni {
                            a[j * ni + i] = v.lambda_d[j] * sh.a[j * sh.max_in + i];
                        }
                        for o in 0..no {
                            b[o * r + j] = v.lambda_b[o] * sh.bt[j * sh.max_out + o];
                        }
                    }
                    LoraLayer { r, n_in: ni, n_out: no, a, b, scale: 1.0 }
                }
                Term::Dora(_) => return Err(Error::invalid("gguf-lora export", "DoRA does not fold into LoRA (its magnitude rescales the base); merge it instead")),
                Term::MissBat(_) => return Err(Error::invalid("gguf-lora export", "MiSS \"bat\" does not fold into LoRA (its change transforms the base weight's blocks); merge it instead")),
            };
            out.push((l, kind, layer));
        }
    }
    Ok(out)
}
