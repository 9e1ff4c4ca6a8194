//! The f32 matrices a low-rank term holds ([`Factor`]): owned, a view of the adapter file's
//! memory map, or transposed from such a view on first use.
//!
//! A rank-16 LoRA of the default model has 19.5 MB of f32 factors. Copying them out of the file
//! costs fresh memory (a page fault and a zeroed page per 4 KiB, and the allocator hands the pages
//! back when the adapter goes), which was most of a load. Under the 8-bit numerics decode reads
//! only the factors' Q8_0 copies, so a loader keeps `A` as a view of the map and builds `Bᵀ` only
//! when something reads it (f32 numerics, merging, exporting, training).
//!
//! Like the base model's map, a mapped factor assumes the file is not rewritten while it is
//! loaded; its values were checked (shapes, finiteness) when it was loaded.
use memmap2::Mmap;
use std::ops::{Deref, DerefMut, Range};
use std::sync::{Arc, OnceLock};

/// An f32 matrix, row-major; reads as a slice whatever its storage.
pub struct Factor(Repr);

enum Repr {
    Owned(Vec<f32>),
    /// Little-endian f32 values at `bytes` of `map` (4-byte aligned, checked at construction).
    Mapped { map: Arc<Mmap>, bytes: Range<usize> },
    /// The transpose of the `[rows, cols]` matrix at `bytes` of `map`, made on first read.
    Transposed { map: Arc<Mmap>, bytes: Range<usize>, rows: usize, cols: usize, made: OnceLock<Vec<f32>> },
}

/// The f32 values at `bytes` of `map`, or `None` where they cannot be viewed in place (range
/// outside the map, not 4-byte aligned, or a big-endian host).
fn view<'m>(map: &'m Mmap, bytes: &Range<usize>) -> Option<&'m [f32]> {
    let b = map.get(bytes.clone())?;
    if cfg!(target_endian = "big") || b.len() % 4 != 0 || b.as_ptr().align_offset(std::mem::align_of::<f32>()) != 0 {
        return None;
    }
    // SAFETY: `b` is inside the map (checked by `get`), 4-byte aligned and a whole number of f32s
    // (checked above); every bit pattern is a valid f32; the map is read-only and lives as long as
    // the borrow of `map`. The file is not rewritten while it is mapped (the module's contract).
    Some(unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len() / 4) })
}

impl Factor {
    /// A view of the f32 matrix at `bytes` of `map`; `None` where it cannot be viewed in place.
    pub fn mapped(map: &Arc<Mmap>, bytes: Range<usize>) -> Option<Factor> {
        view(map, &bytes)?;
        Some(Factor(Repr::Mapped { map: map.clone(), bytes }))
    }

    /// The transpose (`[cols, rows]`) of the `[rows, cols]` f32 matrix at `bytes` of `map`, made on
    /// first read; `None` where the matrix cannot be viewed in place or the shape does not match.
    pub fn transposed(map: &Arc<Mmap>, bytes: Range<usize>, rows: usize, cols: usize) -> Option<Factor> {
        if view(map, &bytes)?.len() != rows.checked_mul(cols)? {
            return None;
        }
        Some(Factor(Repr::Transposed { map: map.clone(), bytes, rows, cols, made: OnceLock::new() }))
    }

    /// This `[rows, cols]` factor's transpose made on first read, where it is a view of a map
    /// (nothing copied); otherwise the factor back, unchanged.
    pub fn transposed_view(self, rows: usize, cols: usize) -> std::result::Result<Factor, Factor> {
        match self.0 {
            Repr::Mapped { map, bytes } => Factor::transposed(&map, bytes.clone(), rows, cols).ok_or(Factor(Repr::Mapped { map, bytes })),
            other => Err(Factor(other)),
        }
    }

    /// The source values: the matrix itself, or for a transposed factor the matrix it transposes
    /// (the same values in another order), without making the transpose.
    pub fn source(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped { map, bytes } | Repr::Transposed { map, bytes, .. } => view(map, bytes).expect("checked at construction"),
        }
    }

    /// For a factor that transposes a mapped matrix, that matrix (`[cols, rows]` of this factor's
    /// `[rows, cols]`), read without making the transpose; `None` for other factors.
    pub fn transpose_of(&self) -> Option<&[f32]> {
        match &self.0 {
            Repr::Transposed { .. } => Some(self.source()),
            _ => None,
        }
    }

    /// Whether every value is finite (a transposed factor scans its source; nothing is made).
    pub fn all_finite(&self) -> bool {
        super::term::all_finite(self.source())
    }

    /// Whether the values live in memory of their own (not a view of a file, nor not yet made).
    pub fn is_owned(&self) -> bool {
        matches!(self.0, Repr::Owned(_))
    }

    /// The values as an owned vector.
    pub fn into_vec(self) -> Vec<f32> {
        match self.0 {
            Repr::Owned(v) => v,
            _ => self.to_vec(),
        }
    }
}

impl Deref for Factor {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped { map, bytes } => view(map, bytes).expect("checked at construction"),
            Repr::Transposed { map, bytes, rows, cols, made } => made.get_or_init(|| {
                let src = view(map, bytes).expect("checked at construction");
                let mut t = vec![0f32; rows * cols];
                super::term::transpose_b(src, *cols, *rows, &mut t);
                t
            }),
        }
    }
}

impl DerefMut for Factor {
    /// Writing makes the values the factor's own (a copy of a view, the transpose made).
    fn deref_mut(&mut self) -> &mut [f32] {
        if !self.is_owned() {
            let v = self.to_vec();
            self.0 = Repr::Owned(v);
        }
        match &mut self.0 {
            Repr::Owned(v) => v,
            _ => unreachable!("made owned above"),
        }
    }
}

impl From<Vec<f32>> for Factor {
    fn from(v: Vec<f32>) -> Factor {
        Factor(Repr::Owned(v))
    }
}

impl FromIterator<f32> for Factor {
    fn from_iter<I: IntoIterator<Item = f32>>(it: I) -> Factor {
        Factor(Repr::Owned(it.into_iter().collect()))
    }
}

impl Default for Factor {
    fn default() -> Factor {
        Factor(Repr::Owned(Vec::new()))
    }
}

impl Clone for Factor {
    fn clone(&self) -> Factor {
        Factor(match &self.0 {
            Repr::Owned(v) => Repr::Owned(v.clone()),
            Repr::Mapped { map, bytes } => Repr::Mapped { map: map.clone(), bytes: bytes.clone() },
            Repr::Transposed { map, bytes, rows, cols, made } => {
                Repr::Transposed { map: map.clone(), bytes: bytes.clone(), rows: *rows, cols: *cols, made: made.clone() }
            }
        })
    }
}

impl PartialEq for Factor {
    fn eq(&self, other: &Factor) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Repr::Owned(_) => "owned",
            Repr::Mapped { .. } => "mapped",
            Repr::Transposed { made, .. } if made.get().is_some() => "transposed",
            Repr::Transposed { .. } => "to transpose",
        };
        write!(f, "Factor({kind}, {} values)", self.source().len())
    }
}

#[cfg(test)]
mod tests {
    use super::Factor;
    use memmap2::Mmap;
    use std::sync::Arc;

    /// A map of a file holding 4 bytes of padding then `v` as little-endian f32s.
    fn map_of(v: &[f32], name: &str) -> Arc<Mmap> {
        let p = std::env::temp_dir().join(format!("graft-factor-{}-{name}", std::process::id()));
        let mut bytes = vec![0u8; 4];
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::write(&p, &bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: a private read-only map of a file this test wrote and nothing else writes.
        let m = unsafe { Mmap::map(&f) }.unwrap();
        std::fs::remove_file(&p).ok();
        Arc::new(m)
    }

    /// Views read the mapped values, transposes are made on first read and equal the transpose,
    /// writing makes the values owned without touching the file, and ranges that cannot be viewed
    /// (outside the map, unaligned, wrong shape) are refused.
    #[test]
    fn views_transposes_and_copies_on_write() {
        let (rows, cols) = (5usize, 3usize);
        let v: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.25 - 1.0).collect();
        let map = map_of(&v, "a");
        let bytes = 4..4 + v.len() * 4;
        let a = Factor::mapped(&map, bytes.clone()).unwrap();
        assert_eq!(&a[..], &v[..]);
        assert!(!a.is_owned() && a.all_finite());

        let t = Factor::transposed(&map, bytes.clone(), rows, cols).unwrap();
        assert!(format!("{t:?}").contains("to transpose"));
        assert_eq!(t.source(), &v[..]);
        assert_eq!(t.transpose_of(), Some(&v[..]));
        assert_eq!(a.transpose_of(), None);
        let want: Vec<f32> = (0..cols).flat_map(|j| (0..rows).map(move |i| (i, j))).map(|(i, j)| v[i * cols + j]).collect();
        assert_eq!(&t[..], &want[..]);
        assert!(format!("{t:?}").contains("(transposed"));
        let t2 = t.clone();
        assert_eq!(t2, t);
        assert_eq!(t2.into_vec(), want);

        let mut w = a.clone();
        w[0] = 42.0;
        assert!(w.is_owned() && !a.is_owned());
        assert_eq!((w[0], a[0]), (42.0, v[0]));
        assert_eq!(&w[1..], &v[1..]);
        assert_ne!(w, a);

        assert!(Factor::mapped(&map, 2..10).is_none(), "unaligned");
        assert!(Factor::mapped(&map, 4..4 + v.len() * 4 + 4).is_none(), "past the end");
        assert!(Factor::mapped(&map, 4..7).is_none(), "not whole floats");
        assert!(Factor::transposed(&map, bytes.clone(), rows, cols + 1).is_none(), "shape");
        assert!(Factor::transposed(&map, bytes, usize::MAX, 2).is_none(), "overflowing shape");

        let nan = map_of(&[1.0, f32::NAN], "b");
        assert!(!Factor::transposed(&nan, 4..12, 2, 1).unwrap().all_finite());
        assert_eq!(Factor::from(vec![1.0f32, 2.0]), Factor::from(vec![1.0f32, 2.0]));
        assert!(Factor::default().is_empty());
    }
}
