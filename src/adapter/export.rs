//! Converts an adapter file to another format for a base model: graft's own (recording the base's
//! fingerprint), PEFT (q/k rows back in HF order) or llama.cpp's GGUF LoRA (every method that folds
//! into LoRA). What `graft export` and `graft_adapter_export` do.
use super::{gguf_lora, graft_format, load, native, peft};
use crate::model::Model;
use crate::{Error, Result};
use std::path::Path;

/// An output format of [`export`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// graft's safetensors file.
    Graft,
    /// A PEFT directory.
    Peft,
    /// A llama.cpp GGUF LoRA.
    GgufLora,
}

impl Format {
    /// Parses `graft`, `peft` or `gguf-lora`.
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "graft" => Ok(Format::Graft),
            "peft" => Ok(Format::Peft),
            "gguf-lora" => Ok(Format::GgufLora),
            t => Err(Error::invalid("export", format!("format {t:?}: expected graft, peft or gguf-lora"))),
        }
    }
}

/// Reads the adapter at `src` (any format), checks that it fits `model`, and writes it to `out` as
/// `to` (`model_file`: the base's file name, recorded in PEFT's config).
pub fn export(src: &Path, to: Format, out: &Path, model: &Model, model_file: Option<&str>) -> Result<()> {
    let native = load::read_native(src)?;
    let name = load::name_of(src);
    match to {
        Format::Graft => {
            let mut n = native.clone();
            // Check it fits, and record the base it was made for.
            n.build(name, model)?;
            n.base_fingerprint = Some(model.fingerprint());
            graft_format::write(out, &n)
        }
        Format::Peft => {
            native.build(name, model)?;
            let n = native.with_qk_rows("hf", model.config.n_head, model.config.n_head_kv)?;
            peft::write(out, &n, model_file)
        }
        Format::GgufLora => {
            let ad = native.build(name, model)?;
            gguf_lora::write(out, &native::fold_to_lora(&ad)?)
        }
    }
}
