//! safetensors files, memory-mapped and parsed by the `safetensors` crate (which checks the header
//! length, the JSON and every tensor's byte range); errors name the file.
use crate::{Error, Result};
use std::path::Path;

/// A tensor's entry.
#[derive(Clone, Debug, PartialEq)]
pub struct StTensor {
    /// Name.
    pub name: String,
    /// dtype as safetensors names it (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Bytes of data.
    pub n_bytes: usize,
    /// Offset of the data from the start of the file.
    pub offset: usize,
}

/// Tensor table and metadata of a parsed header.
type Parsed = (Vec<StTensor>, Vec<(String, String)>);

/// An open safetensors file.
pub struct SafeTensorsFile {
    map: std::sync::Arc<memmap2::Mmap>,
    name: String,
    tensors: Vec<StTensor>,
    metadata: Vec<(String, String)>,
}

impl SafeTensorsFile {
    /// Maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensorsFile> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only private map, never written through; see Gguf::open for the truncation caveat.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        let name = path.display().to_string();
        let (tensors, metadata) = Self::parse(&map, &name)?;
        Ok(SafeTensorsFile { map: std::sync::Arc::new(map), name, tensors, metadata })
    }

    fn parse(bytes: &[u8], name: &str) -> Result<Parsed> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::format(name, "header", e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::format(name, "header", e.to_string()))?;
        let mut metadata: Vec<(String, String)> = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        metadata.sort();
        let mut tensors: Vec<StTensor> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| StTensor {
                name: n,
                dtype: format!("{:?}", v.dtype()),
                shape: v.shape().to_vec(),
                n_bytes: v.data().len(),
                // The view's data lies inside `bytes` (the crate checked its range).
                offset: v.data().as_ptr() as usize - bytes.as_ptr() as usize,
            })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((tensors, metadata))
    }

    /// The file name as errors give it.
    pub fn file_name(&self) -> &str {
        &self.name
    }
    /// Tensors, sorted by name.
    pub fn tensors(&self) -> &[StTensor] {
        &self.tensors
    }
    /// `__metadata__` entries, sorted by key.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }
    /// A tensor's values as f32: for `F32` data a view of the map (nothing copied; see
    /// [`Factor`](crate::adapter::factor::Factor)), for `F16` / `BF16` (or data that cannot be
    /// viewed in place) a converted copy. Errors name the file and tensor.
    pub fn tensor_f32(&self, t: &StTensor) -> Result<crate::adapter::factor::Factor> {
        if t.dtype == "F32" {
            if let Some(f) = crate::adapter::factor::Factor::mapped(&self.map, t.offset..t.offset + t.n_bytes) {
                return Ok(f);
            }
        }
        let v = crate::adapter::graft_format::to_f32(&t.dtype, self.tensor_data(&t.name)?).map_err(|m| Error::format(&self.name, &t.name, m))?;
        Ok(v.into())
    }

    /// A tensor's bytes (a view into the map).
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let i = self.tensors.binary_search_by(|t| t.name.as_str().cmp(name)).map_err(|_| Error::format(&self.name, name, "no such tensor"))?;
        let t = &self.tensors[i];
        Ok(&self.map[t.offset..t.offset + t.n_bytes])
    }
}
