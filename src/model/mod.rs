//! The llama forward pass, tokenizer and sampler.
pub mod config;
pub mod forward;
pub mod generate;
pub mod kv_cache;
pub mod pretokenize;
pub mod sampler;
pub mod tiny;
pub mod tokenizer;
pub mod weights;

pub use config::Config;
pub use forward::{Logits, Numerics, Runner, SeqInput};
pub use kv_cache::KvCache;
pub use tokenizer::Tokenizer;
pub use weights::{Linear, LinearKind, Weights};

use crate::format::gguf::{Array, Gguf};
use crate::{Error, Result};
use std::path::Path;

/// A loaded model: the memory-mapped GGUF, its config, weight views and tokenizer. Immutable and
/// shared (`Arc<Model>`) by every runner and session.
pub struct Model {
    /// The mapped file the weights point into.
    pub gguf: Gguf,
    /// Hyper-parameters.
    pub config: Config,
    /// Weight views.
    pub weights: Weights,
    /// The tokenizer from the file's metadata.
    pub tokenizer: Tokenizer,
    fingerprint: String,
}

impl Model {
    /// Maps and checks a llama-family GGUF model.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let gguf = Gguf::open(path)?;
        let config = Config::from_gguf(&gguf)?;
        let weights = Weights::from_gguf(&gguf, &config)?;
        let tokenizer = tokenizer_from_gguf(&gguf)?;
        if tokenizer.n_vocab() != config.n_vocab {
            return Err(Error::model(gguf.file_name(), "tokenizer.ggml.tokens", format!("{} tokens but the embedding has {} rows", tokenizer.n_vocab(), config.n_vocab)));
        }
        let fingerprint = fingerprint_of(&gguf);
        Ok(Model { gguf, config, weights, tokenizer, fingerprint })
    }

    /// The bytes of a weight matrix (a view into the mapped file).
    pub fn bytes(&self, l: &Linear) -> &[u8] {
        &self.gguf.data()[l.range.clone()]
    }

    /// A fingerprint of the weights (`fnv1a64:` + 16 hex digits over every tensor's name, shape,
    /// type and first and last 256 bytes): adapters record the base they were made for with it.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The chat template (`tokenizer.chat_template`, Jinja source) if the file has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.gguf.get("tokenizer.chat_template").and_then(|v| v.as_str())
    }

    /// Size of the model file in bytes.
    pub fn file_bytes(&self) -> usize {
        self.gguf.data().len()
    }
}

/// FNV-1a (64-bit) over each tensor's name, dims, type and a sample of its bytes.
fn fingerprint_of(g: &Gguf) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for t in g.tensors() {
        eat(t.name.as_bytes());
        for d in &t.dims {
            eat(&d.to_le_bytes());
        }
        eat(t.ty.name().as_bytes());
        let data = g.tensor_data(t);
        let k = data.len().min(256);
        eat(&data[..k]);
        eat(&data[data.len() - k..]);
    }
    format!("fnv1a64:{h:016x}")
}

/// Builds the tokenizer from the `tokenizer.ggml.*` metadata of a GGUF file.
pub fn tokenizer_from_gguf(g: &Gguf) -> Result<Tokenizer> {
    Tokenizer::new(tokenizer_metadata_from_gguf(g)?).map_err(|e| match e {
        Error::Tokenizer(msg) => Error::format(g.file_name(), "tokenizer", msg),
        e => e,
    })
}

/// The `tokenizer.ggml.*` metadata of a GGUF file, type-checked.
pub fn tokenizer_metadata_from_gguf(g: &Gguf) -> Result<tokenizer::TokenizerMetadata> {
    let file = g.file_name();
    let arr = |k: &str| g.get(k).map(|v| v.as_array().ok_or_else(|| Error::format(file, k, format!("expected an array, found {}", v.type_name())))).transpose();
    let strings = |k: &str| -> Result<Option<Vec<String>>> {
        match arr(k)? {
            None => Ok(None),
            Some(Array::Str(v)) => Ok(Some(v.clone())),
            Some(_) => Err(Error::format(file, k, "expected an array of strings")),
        }
    };
    let tokens = strings("tokenizer.ggml.tokens")?.ok_or_else(|| Error::format(file, "tokenizer.ggml.tokens", "missing"))?;
    let scores = match arr("tokenizer.ggml.scores")? {
        None => None,
        Some(Array::F32(v)) => Some(v.clone()),
        Some(_) => return Err(Error::format(file, "tokenizer.ggml.scores", "expected an array of f32")),
    };
    let token_types = match arr("tokenizer.ggml.token_type")? {
        None => None,
        Some(Array::I32(v)) => Some(v.clone()),
        Some(Array::U32(v)) => Some(v.iter().map(|x| *x as i32).collect()),
        Some(_) => return Err(Error::format(file, "tokenizer.ggml.token_type", "expected an array of i32")),
    };
    let meta = tokenizer::TokenizerMetadata {
        model: g.get_str("tokenizer.ggml.model")?.to_string(),
        pre: g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).map(str::to_string),
        tokens,
        scores,
        token_types,
        merges: strings("tokenizer.ggml.merges")?,
        bos: g.get_opt_u32("tokenizer.ggml.bos_token_id")?,
        eos: g.get_opt_u32("tokenizer.ggml.eos_token_id")?,
        eot: g.get_opt_u32("tokenizer.ggml.eot_token_id")?,
        unk: g.get_opt_u32("tokenizer.ggml.unknown_token_id")?,
        pad: g.get_opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: g.get_opt_bool("tokenizer.ggml.add_bos_token")?,
        add_eos: g.get_opt_bool("tokenizer.ggml.add_eos_token")?,
        add_space_prefix: g.get_opt_bool("tokenizer.ggml.add_space_prefix")?,
    };
    Ok(meta)
}
