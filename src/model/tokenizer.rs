//! The tokenizer, built from GGUF tokenizer metadata, giving the token ids llama.cpp gives.
//!
//! Two vocabulary kinds:
//! - `gpt2`: byte-level BPE. Text is split into pre-tokens by the scanner of the
//!   `tokenizer.ggml.pre` type ([`super::pretokenize`]), each pre-token's bytes are mapped to
//!   GPT-2's byte alphabet and merged by merge rank (lowest rank first, leftmost first on ties).
//! - `llama`: SentencePiece. Spaces become `▁`, a space is prefixed (`add_space_prefix`) to text
//!   at the start and after a special token, adjacent symbols are merged best score first
//!   (leftmost first on ties), and symbols that are not tokens fall back to `<0xXX>` byte tokens.
//!
//! Special tokens (control, user-defined and unknown types) are cut out of the raw text first, as
//! llama.cpp's `tokenizer_st_partition` does: longest text first; control and unknown tokens only
//! when `parse_special` is set, user-defined tokens always.
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::pretokenize::{self, PreKind};
use crate::{Error, Result};

/// GGUF token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    /// Undefined.
    pub const UNDEFINED: i32 = 0;
    /// A normal token.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control token (`<|im_start|>`, `<s>`...).
    pub const CONTROL: i32 = 3;
    /// A user-defined token.
    pub const USER_DEFINED: i32 = 4;
    /// An unused token.
    pub const UNUSED: i32 = 5;
    /// A byte token (`<0x0A>`).
    pub const BYTE: i32 = 6;
}
use token_type as tt;

/// The tokenizer part of a GGUF file's metadata (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default)]
pub struct TokenizerMetadata {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer type of a gpt2 model ("smollm", "llama-bpe"...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`: "left right" strings, highest priority first.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
}

/// Token texts llama.cpp treats as end of generation whatever their id (its EOT / EOG / FIM
/// auto-detection); such tokens are also made control tokens, as llama.cpp does.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
    // FIM pad / repo / file-separator tokens are EOG in llama.cpp too
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

#[allow(clippy::large_enum_variant)] // one per tokenizer
enum Kind {
    Bpe {
        pre: PreKind,
        /// (left id, right id) -> (rank, merged id)
        ranks: HashMap<(u32, u32), (u32, u32)>,
        /// the token of each byte's GPT-2 alphabet character
        byte_tok: [Option<u32>; 256],
        /// the GPT-2 alphabet character of each byte
        byte_chr: [char; 256],
        /// a pre-token that is a whole token is emitted as is (llama 3)
        ignore_merges: bool,
    },
    Spm {
        scores: Vec<f32>,
        /// `<0xXX>` token of each byte (or the one-character token, or unk)
        byte_tok: [Option<u32>; 256],
    },
}

/// A tokenizer built from [`TokenizerMetadata`]. `Send + Sync`; encoding takes `&self`.
pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    types: Vec<i32>,
    to_id: HashMap<String, u32>,
    /// decoded bytes of every token (control / unknown / unused / undefined: empty)
    pieces: Vec<Vec<u8>>,
    /// special tokens cut out of raw text, longest text first
    specials: Vec<u32>,
    eog: HashSet<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

fn err(msg: impl Into<String>) -> Error {
    Error::Tokenizer(msg.into())
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the rest to U+0100...
fn gpt2_byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let keep = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        out[b as usize] = if keep {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    out
}

impl Tokenizer {
    /// Builds the tokenizer; metadata that cannot describe a vocabulary is an [`Error::Tokenizer`]
    /// naming the field at fault.
    pub fn new(meta: TokenizerMetadata) -> Result<Tokenizer> {
        let n = meta.tokens.len();
        if n == 0 {
            return Err(err("tokenizer.ggml.tokens: empty vocabulary"));
        }
        if n > i32::MAX as usize {
            return Err(err(format!("tokenizer.ggml.tokens: {n} tokens is too many")));
        }
        let mut types = match meta.token_types {
            Some(t) if t.len() != n => {
                return Err(err(format!("tokenizer.ggml.token_type: {} entries for {n} tokens", t.len())))
            }
            Some(t) => t,
            None => vec![tt::NORMAL; n],
        };
        if let Some(s) = &meta.scores {
            if s.len() != n {
                return Err(err(format!("tokenizer.ggml.scores: {} entries for {n} tokens", s.len())));
            }
        }
        let mut tokens = meta.tokens;
        let mut to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]"); // as llama.cpp does
            }
            if let Some(prev) = to_id.insert(t.clone(), i as u32) {
                return Err(err(format!("tokenizer.ggml.tokens[{i}]: {t:?} duplicates token {prev}")));
            }
        }
        let check_id = |field: &str, id: Option<u32>| -> Result<Option<u32>> {
            match id {
                Some(v) if v as usize >= n => {
                    Err(err(format!("tokenizer.ggml.{field}: id {v} out of range (vocabulary has {n} tokens)")))
                }
                v => Ok(v),
            }
        };
        let bos_meta = check_id("bos_token_id", meta.bos)?;
        let eos_meta = check_id("eos_token_id", meta.eos)?;
        let eot = check_id("eot_token_id", meta.eot)?;
        let unk_meta = check_id("unknown_token_id", meta.unk)?;
        check_id("padding_token_id", meta.pad)?;
        let default_id = |v: u32| if (v as usize) < n { Some(v) } else { None };

        let (kind, bos, eos, mut add_bos, mut add_eos, mut add_space_prefix);
        match meta.model.as_str() {
            "gpt2" => {
                let pre_name = meta.pre.as_deref().unwrap_or("");
                let supported = || pretokenize::PRE_TYPES.iter().map(|p| p.0).collect::<Vec<_>>().join(", ");
                let Some((pre, llama3_like)) = pretokenize::lookup(pre_name) else {
                    return Err(err(match &meta.pre {
                        None => {
                            format!("tokenizer.ggml.pre: missing for a gpt2 vocabulary; supported: {}", supported())
                        }
                        Some(p) => {
                            format!("tokenizer.ggml.pre: unsupported pre-tokenizer {p:?}; supported: {}", supported())
                        }
                    }));
                };
                let Some(merges) = &meta.merges else {
                    return Err(err("tokenizer.ggml.merges: missing for a gpt2 vocabulary"));
                };
                let mut ranks = HashMap::with_capacity(merges.len());
                for (k, m) in merges.iter().enumerate() {
                    // llama.cpp splits at the first space after the first byte
                    let sp = m.as_bytes().iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
                    let Some(sp) = sp else {
                        return Err(err(format!("tokenizer.ggml.merges[{k}]: {m:?} is not \"left right\"")));
                    };
                    let (l, r) = (&m[..sp], &m[sp + 1..]);
                    if r.is_empty() {
                        return Err(err(format!("tokenizer.ggml.merges[{k}]: {m:?} has an empty right part")));
                    }
                    // merges whose parts or result are not tokens can never apply to token symbols
                    let (Some(&li), Some(&ri)) = (to_id.get(l), to_id.get(r)) else { continue };
                    let Some(&mi) = to_id.get(&format!("{l}{r}")) else { continue };
                    ranks.entry((li, ri)).or_insert((k as u32, mi));
                }
                let byte_chr = gpt2_byte_chars();
                let mut byte_tok = [None; 256];
                for b in 0..256 {
                    byte_tok[b] = to_id.get(byte_chr[b].to_string().as_str()).copied();
                }
                kind = Kind::Bpe { pre, ranks, byte_tok, byte_chr, ignore_merges: llama3_like };
                bos = bos_meta.or_else(|| default_id(11));
                eos = eos_meta.or_else(|| default_id(11));
                add_bos = llama3_like;
                add_eos = false;
                add_space_prefix = false;
            }
            "llama" => {
                let scores = meta.scores.clone().unwrap_or_else(|| vec![0.0; n]);
                if let Some((i, _)) = scores.iter().enumerate().find(|(_, s)| s.is_nan()) {
                    return Err(err(format!("tokenizer.ggml.scores[{i}]: NaN")));
                }
                let unk = unk_meta.or_else(|| default_id(0));
                let mut byte_tok = [None; 256];
                for (b, slot) in byte_tok.iter_mut().enumerate() {
                    *slot = to_id
                        .get(&format!("<0x{b:02X}>"))
                        .or_else(|| std::str::from_utf8(&[b as u8]).ok().and_then(|s| to_id.get(s)))
                        .copied()
                        .or(unk);
                }
                kind = Kind::Spm { scores, byte_tok };
                bos = bos_meta.or_else(|| default_id(1));
                eos = eos_meta.or_else(|| default_id(2));
                add_bos = true;
                add_eos = false;
                add_space_prefix = true;
            }
            other => {
                return Err(err(format!(
                    "tokenizer.ggml.model: unsupported tokenizer {other:?}; supported: gpt2, llama"
                )))
            }
        }
        if let Some(v) = meta.add_bos {
            add_bos = v;
        }
        if let Some(v) = meta.add_eos {
            add_eos = v;
        }
        if let Some(v) = meta.add_space_prefix {
            add_space_prefix = v;
        }

        let mut eog: HashSet<u32> = eos.into_iter().chain(eot).collect();
        for t in EOG_TEXTS {
            if let Some(&id) = to_id.get(*t) {
                eog.insert(id);
                types[id as usize] = tt::CONTROL;
            }
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| matches!(types[i as usize], tt::CONTROL | tt::USER_DEFINED | tt::UNKNOWN))
            .collect();
        specials.sort_by_key(|&i| Reverse(tokens[i as usize].len())); // stable: ties by id

        let pieces = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| match ty {
                tt::USER_DEFINED => t.as_bytes().to_vec(),
                tt::NORMAL => match &kind {
                    Kind::Bpe { byte_chr, .. } => t
                        .chars()
                        .flat_map(|c| match byte_chr.iter().position(|&x| x == c) {
                            Some(b) => vec![b as u8],
                            None => c.to_string().into_bytes(),
                        })
                        .collect(),
                    Kind::Spm { .. } => t.replace('\u{2581}', " ").into_bytes(),
                },
                tt::BYTE => match (&kind, parse_byte_token(t)) {
                    (Kind::Spm { .. }, Some(b)) => vec![b],
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            })
            .collect();

        Ok(Tokenizer {
            kind,
            tokens,
            types,
            to_id,
            pieces,
            specials,
            eog,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Tokenizes `text`. `add_special`: prepend BOS / append EOS where the vocabulary asks for it
    /// (`add_bos_token` / `add_eos_token`, defaulting as llama.cpp does: SentencePiece and llama 3
    /// vocabularies add BOS, other gpt2 ones do not). `parse_special`: control tokens written in
    /// the text (`<|im_start|>`) become their ids instead of being tokenized as text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let frags = self.partition(text, parse_special);
        let mut prev_special = true;
        for frag in frags {
            match frag {
                Frag::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Frag::Text(a, b) => {
                    let t = &text[a..b];
                    match &self.kind {
                        Kind::Bpe { .. } => self.encode_bpe(t, &mut out),
                        Kind::Spm { .. } => {
                            let mut s = String::with_capacity(t.len() + 4);
                            if self.add_space_prefix && prev_special {
                                s.push('\u{2581}');
                            }
                            for c in t.chars() {
                                s.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            self.encode_spm(&s, &mut out);
                        }
                    }
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// The raw bytes token `id` decodes to: GPT-2 byte alphabet undone for gpt2 vocabularies, `▁`
    /// made a space and `<0xXX>` made its byte for SentencePiece ones. Control, unknown and unused
    /// tokens decode to nothing (see [`Tokenizer::token_bytes_special`]); so do ids out of range.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map(|p| p.as_slice()).unwrap_or(&[])
    }

    /// Like [`Tokenizer::token_bytes`], but control and unknown tokens decode to their text.
    pub fn token_bytes_special(&self, id: u32) -> &[u8] {
        match self.types.get(id as usize) {
            Some(&(tt::CONTROL | tt::UNKNOWN)) => self.tokens[id as usize].as_bytes(),
            _ => self.token_bytes(id),
        }
    }

    /// The bytes of `ids`, concatenated (may end inside a UTF-8 sequence). For vocabularies with
    /// `add_space_prefix`, the first token loses one leading space, as in llama.cpp's detokenizer,
    /// so `decode(encode(s, false, false)) == s`.
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            let mut p = self.token_bytes(id);
            if i == 0 && self.add_space_prefix && p.first() == Some(&b' ') {
                p = &p[1..];
            }
            out.extend_from_slice(p);
        }
        out
    }

    /// The number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `id` ends generation: EOS, EOT, and the tokens llama.cpp recognises by their text
    /// (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, `<end_of_turn>`...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The vocabulary string of `id` ("" when out of range).
    pub fn token_text(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map(|s| s.as_str()).unwrap_or("")
    }

    /// The token whose vocabulary string is `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.to_id.get(text).copied()
    }

    /// The GGUF token type of `id` (see [`token_type`]).
    pub fn token_type(&self, id: u32) -> Option<i32> {
        self.types.get(id as usize).copied()
    }

    /// Whether encoding with `add_special` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether encoding with `add_special` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Cuts special tokens out of `text` (llama.cpp's `tokenizer_st_partition`).
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Frag> {
        let mut frags = if text.is_empty() { Vec::new() } else { vec![Frag::Text(0, text.len())] };
        for &id in &self.specials {
            let ty = self.types[id as usize];
            if !parse_special && (ty == tt::CONTROL || ty == tt::UNKNOWN) {
                continue;
            }
            let st = self.tokens[id as usize].as_str();
            if !frags.iter().any(|f| matches!(f, Frag::Text(a, b) if text[*a..*b].contains(st))) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = text[a..b].find(st) {
                    if p > 0 {
                        next.push(Frag::Text(a, a + p));
                    }
                    next.push(Frag::Token(id));
                    a += p + st.len();
                }
                if a < b {
                    next.push(Frag::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }

    fn encode_bpe(&self, text: &str, out: &mut Vec<u32>) {
        let Kind::Bpe { pre, ranks, byte_tok, byte_chr, ignore_merges } = &self.kind else { unreachable!() };
        let mut syms: Vec<BpeSym> = Vec::new();
        // (rank, left, right, left id, right id), lowest rank then leftmost first
        let mut heap: BinaryHeap<Reverse<MergeCand>> = BinaryHeap::new();
        for (a, b) in pretokenize::split(*pre, text) {
            let word = &text.as_bytes()[a..b];
            if *ignore_merges {
                let enc: String = word.iter().map(|&c| byte_chr[c as usize]).collect();
                if let Some(&id) = self.to_id.get(&enc) {
                    out.push(id);
                    continue;
                }
            }
            if word.len() == 1 {
                out.extend(byte_tok[word[0] as usize]);
                continue;
            }
            syms.clear();
            heap.clear();
            let n = word.len();
            for (i, &c) in word.iter().enumerate() {
                syms.push(BpeSym {
                    id: byte_tok[c as usize].unwrap_or(NO_TOKEN),
                    prev: if i == 0 { NONE } else { i as u32 - 1 },
                    next: if i + 1 == n { NONE } else { i as u32 + 1 },
                    alive: true,
                });
            }
            let push = |heap: &mut BinaryHeap<_>, syms: &[BpeSym], l: u32, r: u32| {
                if l == NONE || r == NONE {
                    return;
                }
                if let Some(&(rank, _)) = ranks.get(&(syms[l as usize].id, syms[r as usize].id)) {
                    heap.push(Reverse((rank, l, r, syms[l as usize].id, syms[r as usize].id)));
                }
            };
            for i in 1..n as u32 {
                push(&mut heap, &syms, i - 1, i);
            }
            while let Some(Reverse((_, l, r, lid, rid))) = heap.pop() {
                let (ls, rs) = (syms[l as usize], syms[r as usize]);
                // stale: a side was merged away, or changed, since the pair was queued
                if !ls.alive || !rs.alive || ls.next != r || ls.id != lid || rs.id != rid {
                    continue;
                }
                let Some(&(_, merged)) = ranks.get(&(ls.id, rs.id)) else { continue };
                syms[l as usize].id = merged;
                syms[l as usize].next = rs.next;
                syms[r as usize].alive = false;
                if rs.next != NONE {
                    syms[rs.next as usize].prev = l;
                }
                push(&mut heap, &syms, ls.prev, l);
                push(&mut heap, &syms, l, rs.next);
            }
            let mut i = 0u32;
            while i != NONE {
                let s = syms[i as usize];
                if s.id != NO_TOKEN {
                    out.push(s.id);
                }
                i = s.next;
            }
        }
    }

    fn encode_spm(&self, text: &str, out: &mut Vec<u32>) {
        let Kind::Spm { scores, byte_tok } = &self.kind else { unreachable!() };
        if text.is_empty() {
            return;
        }
        // symbols: [start, len) byte ranges of `text`, linked
        let mut syms: Vec<SpmSym> = Vec::with_capacity(text.len());
        for (i, c) in text.char_indices() {
            let idx = syms.len() as u32;
            syms.push(SpmSym { start: i as u32, len: c.len_utf8() as u32, prev: idx.wrapping_sub(1), next: idx + 1 });
        }
        let last = syms.len() - 1;
        syms[0].prev = NONE;
        syms[last].next = NONE;
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<SpmBigram>, syms: &[SpmSym], l: u32, r: u32| {
            if l == NONE || r == NONE {
                return;
            }
            let (ls, rs) = (syms[l as usize], syms[r as usize]);
            let s = &text[ls.start as usize..(ls.start + ls.len + rs.len) as usize];
            if let Some(&id) = self.to_id.get(s) {
                heap.push(SpmBigram { score: scores[id as usize], left: l, right: r, size: ls.len + rs.len });
            }
        };
        for i in 1..syms.len() as u32 {
            try_add(&mut heap, &syms, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (ls, rs) = (syms[bg.left as usize], syms[bg.right as usize]);
            if ls.len == 0 || rs.len == 0 || ls.len + rs.len != bg.size {
                continue;
            }
            syms[bg.left as usize].len += rs.len;
            syms[bg.right as usize].len = 0;
            syms[bg.left as usize].next = rs.next;
            if rs.next != NONE {
                syms[rs.next as usize].prev = bg.left;
            }
            try_add(&mut heap, &syms, ls.prev, bg.left);
            try_add(&mut heap, &syms, bg.left, rs.next);
        }
        let mut i = 0u32;
        while i != NONE {
            let s = syms[i as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            match self.to_id.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| byte_tok[b as usize])),
            }
            i = s.next;
        }
    }
}

type MergeCand = (u32, u32, u32, u32, u32);

const NONE: u32 = u32::MAX;
const NO_TOKEN: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct BpeSym {
    id: u32,
    prev: u32,
    next: u32,
    alive: bool,
}

#[derive(Clone, Copy)]
struct SpmSym {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

struct SpmBigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for SpmBigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for SpmBigram {}
impl PartialOrd for SpmBigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for SpmBigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

enum Frag {
    Text(usize, usize),
    Token(u32),
}

fn parse_byte_token(t: &str) -> Option<u8> {
    let h = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if h.len() != 2 {
        return None;
    }
    u8::from_str_radix(h, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_bpe() -> TokenizerMetadata {
        let mut tokens: Vec<String> = gpt2_byte_chars().iter().map(|c| c.to_string()).collect();
        for t in ["ab", "abc", "Ġa", "<|im_end|>"] {
            tokens.push(t.into());
        }
        let mut types = vec![1; tokens.len()];
        *types.last_mut().unwrap() = 3;
        TokenizerMetadata {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens,
            token_types: Some(types),
            merges: Some(vec!["a b".into(), "ab c".into(), "Ġ a".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn bpe_merges_and_bytes() {
        let t = Tokenizer::new(tiny_bpe()).unwrap();
        let abc = t.token_id("abc").unwrap();
        let ga = t.token_id("Ġa").unwrap();
        assert_eq!(t.encode("abc", false, false), vec![abc]);
        // "a b" (rank 0) beats "Ġ a" (rank 2): " ab" is Ġ + ab, " ac" is Ġa + c
        let ids = t.encode("abc ab ac\n", false, false);
        let id = |s: &str| t.token_id(s).unwrap();
        assert_eq!(ids, [abc, id("Ġ"), id("ab"), ga, id("c"), id("Ċ")]);
        assert_eq!(t.decode(&ids), b"abc ab ac\n");
        let end = t.token_id("<|im_end|>").unwrap();
        assert!(t.is_eog(end));
        assert_eq!(t.encode("a<|im_end|>", false, true), vec![t.token_id("a").unwrap(), end]);
        assert_ne!(t.encode("a<|im_end|>", false, false)[1], end);
        assert!(t.token_bytes(end).is_empty());
        assert_eq!(t.token_bytes_special(end), b"<|im_end|>");
    }

    #[test]
    fn llama3_ignore_merges_and_add_bos() {
        // "abc" is a token but no merge reaches it from "a" "b" "c" when "a b" is absent
        let mut m = tiny_bpe();
        m.merges = Some(vec!["b c".into()]);
        m.bos = Some(0);
        let gpt2 = Tokenizer::new(m.clone()).unwrap();
        let id = |s: &str| gpt2.token_id(s).unwrap();
        assert_eq!(gpt2.encode("abc", true, false), [id("a"), id("b"), id("c")]);
        m.pre = Some("llama-bpe".into());
        let l3 = Tokenizer::new(m.clone()).unwrap();
        assert_eq!(l3.encode("abc", true, false), [0, id("abc")]);
        m.add_bos = Some(false);
        assert_eq!(Tokenizer::new(m).unwrap().encode("abc", true, false), [id("abc")]);
    }

    #[test]
    fn hostile() {
        let mut m = tiny_bpe();
        m.merges.as_mut().unwrap()[1] = "abc".into();
        let e = Tokenizer::new(m).err().unwrap().to_string();
        assert!(e.contains("merges[1]"), "{e}");
        let mut m = tiny_bpe();
        m.pre = Some("nope".into());
        let e = Tokenizer::new(m).err().unwrap().to_string();
        assert!(e.contains("nope") && e.contains("smollm"), "{e}");
        let mut m = tiny_bpe();
        m.eos = Some(100_000);
        assert!(Tokenizer::new(m).err().unwrap().to_string().contains("eos_token_id"));
        let mut m = tiny_bpe();
        m.model = "rwkv".into();
        assert!(Tokenizer::new(m).err().unwrap().to_string().contains("tokenizer.ggml.model"));
    }

    #[test]
    fn send_sync() {
        fn f<T: Send + Sync>() {}
        f::<Tokenizer>();
    }
}
