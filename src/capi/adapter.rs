//! Adapters of a model handle: load, unload, set scale, list, export. They live in the model's
//! [`crate::adapter::Registry`]; sessions name the ones they use (`graft_session_set_adapters`).
use super::handle::Table;
use super::model::{graft_model, MODELS};
use super::{arg_opt_str, arg_str, ffi, Failure, GraftStatus, Out};
use crate::adapter::load::name_of;
use std::ffi::{c_char, CString};
use std::path::Path;

/// A snapshot of a model's adapters (opaque), from `graft_adapter_list_new`, released by
/// `graft_adapter_list_free`.
pub struct graft_adapter_list {
    _opaque: [u8; 0],
}

/// One adapter of a `graft_adapter_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_adapter_info {
    /// The name it was loaded under (NUL-terminated; owned by the list).
    pub name: *const c_char,
    /// Its method: "lora", "dora", "vera"... (NUL-terminated; owned by the list).
    pub method: *const c_char,
    /// The model-wide scale (`graft_adapter_set_scale`) when the list was made.
    pub scale: f32,
    /// Trainable parameters of the method.
    pub params: u64,
    /// Holders of the adapter besides the registry (sessions using it) when the list was made.
    pub users: u64,
}

/// A list handle's object: the rows, with the strings their pointers point into.
pub(crate) struct AdapterList {
    strings: Vec<(CString, CString)>,
    rows: Vec<(f32, u64, u64)>,
}

static LISTS: Table<AdapterList> = Table::new("graft_adapter_list");

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Loads the adapter at `path` (a GGUF LoRA, a graft adapter file, or a PEFT directory), checks
/// that it fits the model, and registers it under `name` (NULL: the file stem) with model-wide
/// scale `scale` (each session using it multiplies it by its own scale). A name already loaded,
/// a non-finite scale, or an adapter made for another base are errors; on error nothing changes.
///
/// Ownership: `name` and `path` are borrowed for the call only.
/// Thread safety: callable from any thread, also while sessions of the model generate: they are
/// not stalled (loading happens outside any lock they take).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_load(model: *mut graft_model, name: *const c_char, path: *const c_char, scale: f32) -> GraftStatus {
    ffi("graft_adapter_load", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees both are NULL or NUL-terminated strings.
        let (name, path) = unsafe { (arg_opt_str(name, "name")?, arg_str(path, "path")?) };
        let path = Path::new(path);
        let name = name.unwrap_or_else(|| name_of(path));
        if name.is_empty() {
            return Err(Failure::invalid("name is empty"));
        }
        if !scale.is_finite() {
            return Err(Failure::invalid(format!("scale {scale} is not finite")));
        }
        m.registry.load(name, path, scale)?;
        Ok(())
    })
}

/// Removes adapter `name` from the model. Sessions using it keep it (unchanged) until they set
/// another adapter set; it is freed when the last of them lets go. An unknown name is
/// `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `name` is borrowed for the call only.
/// Thread safety: callable from any thread, also while sessions use the adapter.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_unload(model: *mut graft_model, name: *const c_char) -> GraftStatus {
    ffi("graft_adapter_unload", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees NULL or a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        m.registry.unload(name)?;
        Ok(())
    })
}

/// Sets the model-wide scale of adapter `name`; every session using it computes its next token
/// with the new scale (times the session's own scale for it). A non-finite scale or an unknown
/// name is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `name` is borrowed for the call only.
/// Thread safety: callable from any thread, also while sessions generate with the adapter.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_set_scale(model: *mut graft_model, name: *const c_char, scale: f32) -> GraftStatus {
    ffi("graft_adapter_set_scale", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees NULL or a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        m.registry.set_scale(name, scale)?;
        Ok(())
    })
}

/// Writes to `*out_list` a snapshot of the model's adapters, sorted by name; read it with
/// `graft_adapter_list_len` and `graft_adapter_list_get`.
///
/// Ownership: the list written to `*out_list` is owned by the caller, who releases it with
/// `graft_adapter_list_free`; it does not change when adapters are loaded or unloaded later.
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `out_list` is NULL or points to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_list_new(model: *const graft_model, out_list: *mut *mut graft_adapter_list) -> GraftStatus {
    ffi("graft_adapter_list_new", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees NULL or writable memory for one pointer.
        let out = unsafe { Out::new(out_list, "out_list") }?;
        let listing = m.registry.list();
        let list = AdapterList {
            strings: listing.iter().map(|l| (c_string(&l.name), c_string(&l.method))).collect(),
            rows: listing.iter().map(|l| (l.scale, l.params as u64, l.users as u64)).collect(),
        };
        out.write(LISTS.insert(list));
        Ok(())
    })
}

/// Writes the number of adapters in `list` to `*out_len`.
///
/// Thread safety: a list is immutable; callable from any thread, concurrently.
///
/// # Safety
/// `out_len` is NULL or points to writable memory for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_list_len(list: *const graft_adapter_list, out_len: *mut usize) -> GraftStatus {
    ffi("graft_adapter_list_len", || {
        let l = LISTS.get(list)?;
        // SAFETY: the caller guarantees NULL or writable memory for one size_t.
        let out = unsafe { Out::new(out_len, "out_len") }?;
        out.write(l.rows.len());
        Ok(())
    })
}

/// Writes adapter `index` (0-based, below `graft_adapter_list_len`) of `list` to `*out_info`;
/// an index out of range is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: the strings in `*out_info` belong to `list` and stay valid until
/// `graft_adapter_list_free(list)`.
/// Thread safety: a list is immutable; callable from any thread, concurrently.
///
/// # Safety
/// `out_info` is NULL or points to writable memory for one `graft_adapter_info`.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_list_get(list: *const graft_adapter_list, index: usize, out_info: *mut graft_adapter_info) -> GraftStatus {
    ffi("graft_adapter_list_get", || {
        let l = LISTS.get(list)?;
        // SAFETY: the caller guarantees NULL or writable memory for one graft_adapter_info.
        let out = unsafe { Out::new(out_info, "out_info") }?;
        let (Some((name, method)), Some(&(scale, params, users))) = (l.strings.get(index), l.rows.get(index)) else {
            return Err(Failure::invalid(format!("index {index} is out of range (the list has {} adapters)", l.rows.len())));
        };
        // The pointers stay valid after `l` (a clone of the table's Arc) drops: the table keeps the
        // list, and its CStrings' buffers, until graft_adapter_list_free.
        out.write(graft_adapter_info { name: name.as_ptr(), method: method.as_ptr(), scale, params, users });
        Ok(())
    })
}

/// Releases a list from `graft_adapter_list_new`; the strings it handed out become invalid. NULL is
/// accepted and does nothing.
///
/// Ownership: takes the caller's list.
/// Thread safety: callable from any thread; not while another thread still reads its strings.
#[no_mangle]
pub extern "C" fn graft_adapter_list_free(list: *mut graft_adapter_list) -> GraftStatus {
    ffi("graft_adapter_list_free", || LISTS.free(list))
}

/// Converts the adapter file at `src` (a GGUF LoRA, a graft file or a PEFT directory) to `format`
/// at `out`: "graft" (graft's file, recording the model's fingerprint), "peft" (a PEFT directory)
/// or "gguf-lora" (llama.cpp's GGUF LoRA; every method that folds into LoRA). The adapter is checked
/// against `model` first; it is not loaded into the model's registry.
///
/// Ownership: the strings are borrowed for the call only.
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `src`, `format` and `out` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_export(model: *const graft_model, src: *const c_char, format: *const c_char, out: *const c_char) -> GraftStatus {
    ffi("graft_adapter_export", || {
        // SAFETY: the caller guarantees the strings are NULL or NUL-terminated.
        let (src, format, out) = unsafe { (arg_str(src, "src")?, arg_str(format, "format")?, arg_str(out, "out")?) };
        let mh = MODELS.get(model)?;
        let fmt = crate::adapter::export::Format::parse(format)?;
        crate::adapter::export::export(Path::new(src), fmt, Path::new(out), &mh.model, None)?;
        Ok(())
    })
}
