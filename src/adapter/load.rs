//! Opens an adapter in any supported format, by what the path holds: a PEFT directory
//! (`adapter_config.json` + `adapter_model.safetensors`), a llama.cpp GGUF LoRA (`.gguf`), or graft's
//! own safetensors file; then checks it against the base model.
use super::{gguf_lora, Adapter};
use crate::model::Model;
use crate::{Error, Result};
use std::path::Path;

/// Reads the adapter at `path` and checks that it fits `model`.
pub fn load(path: &Path, model: &Model) -> Result<Adapter> {
    let n_layers = model.weights.blocks.len();
    let ad = if path.is_dir() {
        return Err(Error::format(path.display().to_string(), "adapter_config.json", "PEFT directories are not supported yet"));
    } else {
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            f.read_exact(&mut magic).map_err(|e| Error::io(path, e))?;
        }
        if &magic == b"GGUF" {
            gguf_lora::read(path, n_layers)?
        } else {
            return Err(Error::format(path.display().to_string(), "magic", "neither a GGUF LoRA nor a PEFT directory"));
        }
    };
    ad.check_fits(model)?;
    Ok(ad)
}
