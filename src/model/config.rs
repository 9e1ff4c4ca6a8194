//! Hyper-parameters of a llama-architecture model, read from GGUF metadata.
use crate::format::gguf::Gguf;
use crate::{Error, Result};

/// The shape and constants of a llama-family model.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `general.architecture` (`llama`; `qwen2`, `mistral` share the block structure).
    pub arch: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Embedding width d.
    pub n_embd: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Dimensions RoPE rotates in each head.
    pub n_rot: usize,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// Whether RoPE pairs are (i, i + n_rot/2) (NeoX, e.g. qwen2) rather than adjacent (llama).
    pub rope_neox: bool,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Vocabulary size (rows of the embedding).
    pub n_vocab: usize,
    /// Training context length.
    pub n_ctx_train: usize,
}

impl Config {
    /// Reads the config of a llama-family GGUF; an unsupported architecture or a missing or
    /// inconsistent key is an error naming the file and the key.
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let file = g.file_name().to_string();
        let arch = g.get_str("general.architecture")?.to_string();
        let rope_neox = match arch.as_str() {
            "llama" | "mistral" => false,
            "qwen2" => true,
            other => {
                return Err(Error::model(&file, "general.architecture", format!("unsupported architecture {other:?} (graft runs llama, mistral, qwen2)")))
            }
        };
        let prefix = arch.clone();
        let key = |k: &str| format!("{prefix}.{k}");
        let u = |k: &str| -> Result<usize> { Ok(g.get_u32(&key(k))? as usize) };
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let n_head_kv = g.get_opt_u32(&key("attention.head_count_kv"))?.map_or(n_head, |v| v as usize);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 || n_embd % n_head != 0 {
            return Err(Error::model(&file, key("attention.head_count"), format!("{n_head} heads, {n_head_kv} kv heads, width {n_embd}: not a valid grouping")));
        }
        let head_dim = g.get_opt_u32(&key("attention.key_length"))?.map_or(n_embd / n_head, |v| v as usize);
        let n_rot = g.get_opt_u32(&key("rope.dimension_count"))?.map_or(head_dim, |v| v as usize);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(Error::model(&file, key("rope.dimension_count"), format!("{n_rot} is odd or exceeds the head width {head_dim}")));
        }
        let token_embd = g.tensor("token_embd.weight").ok_or_else(|| Error::model(&file, "token_embd.weight", "missing"))?;
        let n_vocab = token_embd.dims.get(1).copied().unwrap_or(0) as usize;
        let cfg = Config {
            n_layer: u("block_count")?,
            n_embd,
            n_ff: u("feed_forward_length")?,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            rope_base: g.get_opt_f32(&key("rope.freq_base"))?.unwrap_or(10000.0),
            rope_neox,
            rms_eps: g.get_opt_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            n_vocab,
            n_ctx_train: g.get_opt_u32(&key("context_length"))?.map_or(2048, |v| v as usize),
            arch,
        };
        if cfg.n_layer == 0 || cfg.n_layer > 1024 || cfg.n_ff == 0 || n_vocab == 0 {
            return Err(Error::model(&file, key("block_count"), format!("implausible shape: {cfg:?}")));
        }
        Ok(cfg)
    }

    /// Width of the key (and value) projection: `n_head_kv · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of the query projection: `n_head · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}
