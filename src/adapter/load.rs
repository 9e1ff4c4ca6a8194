//! Opens an adapter in any supported format, by what the path holds: a PEFT directory
//! (`adapter_config.json` + `adapter_model.safetensors`), a llama.cpp GGUF LoRA (`.gguf`), or graft's
//! own safetensors file; then checks it against the base model.
use super::{gguf_lora, graft_format, peft, Adapter};
use super::native::NativeAdapter;
use crate::model::Model;
use crate::{Error, Result};
use std::path::Path;

/// Reads the native tensors of the adapter at `path`, whatever its format.
pub fn read_native(path: &Path) -> Result<NativeAdapter> {
    if path.is_dir() {
        if !peft::is_peft_dir(path) {
            return Err(Error::format(path.display().to_string(), "adapter_config.json", "missing: not a PEFT adapter directory"));
        }
        return peft::read(path);
    }
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut magic).map_err(|e| Error::io(path, e))?;
    }
    if &magic == b"GGUF" {
        return gguf_lora::read(path);
    }
    graft_format::read_if_graft(path)?
        .ok_or_else(|| Error::format(path.display().to_string(), "magic", "neither a GGUF LoRA, a graft adapter nor a PEFT directory"))
}

/// A name for the adapter at `path` (its file stem).
pub fn name_of(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("adapter")
}

/// Reads the adapter at `path` and checks that it fits `model`.
pub fn load(path: &Path, model: &Model) -> Result<Adapter> {
    read_native(path)?.into_adapter(name_of(path), model)
}
