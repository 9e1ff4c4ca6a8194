//! Tokenize and detokenize with a model's tokenizer.
use super::model::{check_token, graft_model, MODELS};
use super::{arg_slice, arg_slice_mut, ffi, Failure, GraftStatus, Out};
use std::ffi::c_char;

/// Tokenizes the `text_len` bytes of UTF-8 at `text` (no NUL needed) into `tokens`, and writes
/// the number of tokens to `*out_n`. `add_special`: add BOS/EOS where the vocabulary asks for
/// them. `parse_special`: control tokens written in the text (`<|im_start|>`) become their ids.
/// When `capacity` is below the count the call fails with `GRAFT_STATUS_ERR_BUFFER_TOO_SMALL`,
/// `*out_n` holds the count and `tokens` is not written (call with NULL and 0 to ask the size).
/// Text that is not UTF-8 is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `text` is borrowed for the call only; `tokens` and `out_n` are the caller's.
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `text` is NULL or points to `text_len` readable bytes; `tokens` is NULL or points to `capacity`
/// writable `uint32_t`; `out_n` is NULL or points to writable memory for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_tokenize(
    model: *const graft_model,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    parse_special: bool,
    tokens: *mut u32,
    capacity: usize,
    out_n: *mut usize,
) -> GraftStatus {
    ffi("graft_tokenize", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees `text_len` readable bytes when not NULL.
        let bytes = unsafe { arg_slice(text.cast::<u8>(), text_len, "text") }?;
        // SAFETY: the caller guarantees `capacity` writable ids when not NULL.
        let buf = unsafe { arg_slice_mut(tokens, capacity, "tokens") }?;
        // SAFETY: the caller guarantees NULL or writable memory for one size_t.
        let out_n = unsafe { Out::new(out_n, "out_n") }?;
        let text = std::str::from_utf8(bytes).map_err(|e| Failure::invalid(format!("text is not UTF-8 ({e})")))?;
        let ids = m.model.tokenizer.encode(text, add_special, parse_special);
        out_n.write(ids.len());
        if buf.len() < ids.len() {
            return Err(Failure::new(GraftStatus::ErrBufferTooSmall, format!("capacity {} is below the {} tokens", buf.len(), ids.len())));
        }
        buf[..ids.len()].copy_from_slice(&ids);
        Ok(())
    })
}

/// Turns `n_tokens` token ids into text: writes the bytes (UTF-8, though a cut through a
/// character leaves a partial one at the end) and a terminating NUL to `text`, and the byte count
/// (without the NUL) to `*out_n`. Control tokens give no text. When `capacity` is not above the
/// byte count the call fails with `GRAFT_STATUS_ERR_BUFFER_TOO_SMALL`, `*out_n` holds the count and
/// `text` is not written (call with NULL and 0 to ask the size; then pass count + 1). An id outside
/// the vocabulary is `GRAFT_STATUS_ERR_INVALID_ARGUMENT`.
///
/// Ownership: `tokens` is borrowed for the call only; `text` and `out_n` are the caller's.
/// Thread safety: callable from any thread, concurrently.
///
/// # Safety
/// `tokens` is NULL or points to `n_tokens` readable `uint32_t`; `text` is NULL or points to
/// `capacity` writable bytes; `out_n` is NULL or points to writable memory for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn graft_detokenize(model: *const graft_model, tokens: *const u32, n_tokens: usize, text: *mut c_char, capacity: usize, out_n: *mut usize) -> GraftStatus {
    ffi("graft_detokenize", || {
        let m = MODELS.get(model)?;
        // SAFETY: the caller guarantees `n_tokens` readable ids when not NULL.
        let ids = unsafe { arg_slice(tokens, n_tokens, "tokens") }?;
        // SAFETY: the caller guarantees `capacity` writable bytes when not NULL.
        let buf = unsafe { arg_slice_mut(text.cast::<u8>(), capacity, "text") }?;
        // SAFETY: the caller guarantees NULL or writable memory for one size_t.
        let out_n = unsafe { Out::new(out_n, "out_n") }?;
        for &t in ids {
            check_token(&m.model, t)?;
        }
        let bytes = m.model.tokenizer.decode(ids);
        out_n.write(bytes.len());
        if buf.len() <= bytes.len() {
            return Err(Failure::new(GraftStatus::ErrBufferTooSmall, format!("capacity {} is not above the {} bytes (room for the NUL is needed)", buf.len(), bytes.len())));
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        buf[bytes.len()] = 0;
        Ok(())
    })
}
