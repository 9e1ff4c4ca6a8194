//! Pre-tokenizers of byte-level BPE vocabularies: hand-written scanners that split text into the
//! pre-tokens llama.cpp's `unicode_regex_split` produces for each `tokenizer.ggml.pre` type.
//!
//! Character classes follow llama.cpp: `\p{L}` = general categories L*, `\p{N}` = N*, and `\s` =
//! the set Python's `str.isspace` accepts (what llama.cpp's generated `unicode_set_whitespace`
//! holds), which includes U+001C..U+001F and U+0085.
//!
//! A pattern list is applied in order: each pattern splits every piece the previous one left
//! (a later pattern never sees across an earlier split), and text no pattern alternative matches
//! becomes a piece of its own, as in llama.cpp.
use unicode_general_category::{get_general_category, GeneralCategory as G};

const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const SPACE: u8 = 4;
/// Set on every code point inside the current piece; positions outside read as 0.
const VALID: u8 = 8;

/// `\s` as llama.cpp defines it (Python's `str.isspace`).
pub fn is_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{1C}'..='\u{1F}' | ' ' | '\u{85}' | '\u{A0}'
            | '\u{1680}' | '\u{2000}'..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}'
            | '\u{205F}' | '\u{3000}'
    )
}

fn flags_of(c: char) -> u8 {
    if c.is_ascii() {
        let b = c as u8;
        let mut f = VALID;
        if b.is_ascii_alphabetic() {
            f |= LETTER;
        } else if b.is_ascii_digit() {
            f |= NUMBER;
        } else if is_whitespace(c) {
            f |= SPACE;
        }
        return f;
    }
    let mut f = VALID;
    match get_general_category(c) {
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter => {
            f |= LETTER
        }
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => f |= NUMBER,
        _ => {}
    }
    if is_whitespace(c) {
        f |= SPACE;
    }
    f
}

/// The pre-tokenizer families graft implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreKind {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (llama.cpp's
    /// custom matcher, which also takes the `|\s+` fallback).
    Gpt2,
    /// `\p{N}` (every digit alone), then GPT-2: starcoder, refact, command-r, smollm, codeshell, exaone, minerva.
    DigitsThenGpt2,
    /// llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// qwen2: the llama 3 pattern with `\p{N}` (single digits) instead of `\p{N}{1,3}`.
    Qwen2,
}

/// The supported `tokenizer.ggml.pre` names and the family each maps to (llama.cpp's table).
pub const PRE_TYPES: &[(&str, PreKind, bool)] = &[
    // (name, kind, llama3-style: ignore_merges + add_bos default)
    ("gpt-2", PreKind::Gpt2, false),
    ("phi-2", PreKind::Gpt2, false),
    ("jina-es", PreKind::Gpt2, false),
    ("jina-de", PreKind::Gpt2, false),
    ("gigachat", PreKind::Gpt2, false),
    ("jina-v2-es", PreKind::Gpt2, false),
    ("jina-v2-de", PreKind::Gpt2, false),
    ("jina-v1-en", PreKind::Gpt2, false),
    ("jina-v2-code", PreKind::Gpt2, false),
    ("roberta-bpe", PreKind::Gpt2, false),
    ("a.x-4.0", PreKind::Gpt2, false),
    ("mellum", PreKind::Gpt2, false),
    ("mpt", PreKind::Gpt2, false),
    ("olmo", PreKind::Gpt2, false),
    ("jais", PreKind::Gpt2, false),
    ("exaone4", PreKind::Gpt2, false),
    ("trillion", PreKind::Gpt2, false),
    ("granite-docling", PreKind::Gpt2, false),
    ("starcoder", PreKind::DigitsThenGpt2, false),
    ("refact", PreKind::DigitsThenGpt2, false),
    ("command-r", PreKind::DigitsThenGpt2, false),
    ("smollm", PreKind::DigitsThenGpt2, false),
    ("codeshell", PreKind::DigitsThenGpt2, false),
    ("exaone", PreKind::DigitsThenGpt2, false),
    ("minerva-7b", PreKind::DigitsThenGpt2, false),
    ("llama3", PreKind::Llama3, true),
    ("llama-v3", PreKind::Llama3, true),
    ("llama-bpe", PreKind::Llama3, true),
    ("falcon3", PreKind::Llama3, true),
    ("falcon-h1", PreKind::Llama3, true),
    ("pixtral", PreKind::Llama3, true),
    ("midm-2.0", PreKind::Llama3, true),
    ("lfm2", PreKind::Llama3, true),
    ("dbrx", PreKind::Llama3, false),
    ("smaug-bpe", PreKind::Llama3, false),
    ("qwen2", PreKind::Qwen2, false),
    ("deepseek-r1-qwen", PreKind::Qwen2, false),
    ("kormo", PreKind::Qwen2, false),
    ("megrez", PreKind::Qwen2, false),
    ("stablelm2", PreKind::Qwen2, false),
];

/// Looks a `tokenizer.ggml.pre` name up in [`PRE_TYPES`].
pub fn lookup(name: &str) -> Option<(PreKind, bool)> {
    PRE_TYPES.iter().find(|(n, _, _)| *n == name).map(|&(_, k, l)| (k, l))
}

/// Splits `text` into pre-tokens; returns their byte ranges, in order, covering `text` exactly.
pub fn split(kind: PreKind, text: &str) -> Vec<(usize, usize)> {
    let mut offs: Vec<usize> = Vec::with_capacity(text.len() + 1);
    let mut cpts: Vec<char> = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        offs.push(i);
        cpts.push(c);
    }
    offs.push(text.len());
    let flags: Vec<u8> = cpts.iter().map(|&c| flags_of(c)).collect();
    let whole = vec![(0usize, cpts.len())];
    let pieces = match kind {
        PreKind::Gpt2 => split_gpt2(&cpts, &flags, &whole),
        PreKind::DigitsThenGpt2 => split_gpt2(&cpts, &flags, &split_each_number(&flags, &whole)),
        PreKind::Llama3 => split_llama3(&cpts, &flags, &whole, 3),
        PreKind::Qwen2 => split_llama3(&cpts, &flags, &whole, 1),
    };
    pieces.into_iter().map(|(a, b)| (offs[a], offs[b])).collect()
}

/// `\p{N}`: every number code point becomes a piece; the stretches between them are pieces too.
fn split_each_number(flags: &[u8], pieces: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(pieces.len());
    for &(ini, end) in pieces {
        let mut prev = ini;
        for (pos, &f) in flags.iter().enumerate().take(end).skip(ini) {
            if f & NUMBER != 0 {
                if pos > prev {
                    out.push((prev, pos));
                }
                out.push((pos, pos + 1));
                prev = pos + 1;
            }
        }
        if end > prev {
            out.push((prev, end));
        }
    }
    out
}

/// Scanner state over one piece `[ini, end)` of the code points.
struct Scan<'a> {
    cpts: &'a [char],
    flags: &'a [u8],
    ini: usize,
    end: usize,
    prev_end: usize,
}

impl Scan<'_> {
    #[inline]
    fn f(&self, pos: usize) -> u8 {
        if pos >= self.ini && pos < self.end {
            self.flags[pos]
        } else {
            0
        }
    }
    #[inline]
    fn c(&self, pos: usize) -> Option<char> {
        if pos >= self.ini && pos < self.end {
            Some(self.cpts[pos])
        } else {
            None
        }
    }
    #[inline]
    fn emit(&mut self, end: usize, out: &mut Vec<(usize, usize)>) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            out.push((self.prev_end, end));
        }
        self.prev_end = end;
        len
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (optionally ASCII case-insensitive): its length in code points.
    fn contraction(&self, pos: usize, ci: bool) -> usize {
        if self.c(pos) != Some('\'') || pos + 1 >= self.end {
            return 0;
        }
        let low = |c: Option<char>| c.map(|c| if ci { c.to_ascii_lowercase() } else { c });
        let n1 = low(self.c(pos + 1));
        if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < self.end {
            let n2 = low(self.c(pos + 2));
            if matches!((n1, n2), (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))) {
                return 3;
            }
        }
        0
    }
}

fn split_gpt2(cpts: &[char], flags: &[u8], pieces: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(cpts.len() / 3 + pieces.len());
    for &(ini, end) in pieces {
        let mut s = Scan { cpts, flags, ini, end, prev_end: ini };
        let mut pos = ini;
        while pos < end {
            let cpt = cpts[pos];
            let n = s.contraction(pos, false);
            if n > 0 {
                pos += s.emit(pos + n, &mut out);
                continue;
            }
            let is_sp = cpt == ' ';
            let f2 = if is_sp { s.f(pos + 1) } else { s.f(pos) };
            // <space>?\p{L}+  and  <space>?\p{N}+
            let class = if f2 & LETTER != 0 {
                LETTER
            } else if f2 & NUMBER != 0 {
                NUMBER
            } else {
                0
            };
            if class != 0 {
                pos += is_sp as usize;
                while s.f(pos) & class != 0 {
                    pos += 1;
                }
                s.emit(pos, &mut out);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+
            if f2 & (SPACE | LETTER | NUMBER) == 0 && f2 & VALID != 0 {
                pos += is_sp as usize;
                while s.f(pos) & (SPACE | LETTER | NUMBER) == 0 && s.f(pos) & VALID != 0 {
                    pos += 1;
                }
                s.emit(pos, &mut out);
                continue;
            }
            let mut nws = 0;
            while s.f(pos + nws) & SPACE != 0 {
                nws += 1;
            }
            // \s+(?!\S): a run of whitespace followed by a non-space leaves its last one behind
            if nws > 1 && pos + nws < end {
                pos += nws - 1;
                s.emit(pos, &mut out);
                continue;
            }
            // \s+
            if nws > 0 {
                pos += nws;
                s.emit(pos, &mut out);
                continue;
            }
            pos += 1;
            s.emit(pos, &mut out);
        }
    }
    out
}

fn split_llama3(cpts: &[char], flags: &[u8], pieces: &[(usize, usize)], max_digits: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(cpts.len() / 3 + pieces.len());
    for &(ini, end) in pieces {
        let mut s = Scan { cpts, flags, ini, end, prev_end: ini };
        let mut pos = ini;
        while pos < end {
            let cpt = cpts[pos];
            let f = s.f(pos);
            let n = s.contraction(pos, true);
            if n > 0 {
                pos += s.emit(pos + n, &mut out);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cpt == '\r' || cpt == '\n' || f & NUMBER != 0) && (f & LETTER != 0 || s.f(pos + 1) & LETTER != 0) {
                pos += 1;
                while s.f(pos) & LETTER != 0 {
                    pos += 1;
                }
                s.emit(pos, &mut out);
                continue;
            }
            // \p{N}{1,max_digits}
            if f & NUMBER != 0 {
                let mut run_ini = pos;
                while s.f(pos) & NUMBER != 0 {
                    pos += 1;
                    if pos - run_ini >= max_digits {
                        s.emit(pos, &mut out);
                        run_ini = pos;
                    }
                }
                s.emit(pos, &mut out);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*   (llama.cpp tests the current code point for
            // validity, so a lone space at the end of a piece is taken here)
            let is_sp = cpt == ' ';
            let mut f2 = if is_sp { s.f(pos + 1) } else { f };
            if f2 & (SPACE | LETTER | NUMBER) == 0 && f & VALID != 0 {
                pos += is_sp as usize;
                while f2 & (SPACE | LETTER | NUMBER) == 0 && f2 & VALID != 0 {
                    pos += 1;
                    f2 = s.f(pos);
                }
                while matches!(s.c(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                s.emit(pos, &mut out);
                continue;
            }
            let mut nws = 0;
            let mut last_rn = 0;
            while s.f(pos + nws) & SPACE != 0 {
                if matches!(cpts[pos + nws], '\r' | '\n') {
                    last_rn = pos + nws + 1;
                }
                nws += 1;
            }
            // \s*[\r\n]+
            if last_rn > 0 {
                pos = last_rn;
                s.emit(pos, &mut out);
                continue;
            }
            // \s+(?!\S)
            if nws > 1 && pos + nws < end {
                pos += nws - 1;
                s.emit(pos, &mut out);
                continue;
            }
            // \s+
            if nws > 0 {
                pos += nws;
                s.emit(pos, &mut out);
                continue;
            }
            pos += 1;
            s.emit(pos, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(kind: PreKind, text: &str) -> Vec<&str> {
        split(kind, text).into_iter().map(|(a, b)| &text[a..b]).collect()
    }

    #[test]
    fn gpt2_basics() {
        assert_eq!(pieces(PreKind::Gpt2, "Hello world's 2024!"), ["Hello", " world", "'s", " 2024", "!"]);
        assert_eq!(pieces(PreKind::Gpt2, "a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pieces(PreKind::Gpt2, "a   b  "), ["a", "  ", " b", "  "]);
        assert_eq!(pieces(PreKind::Gpt2, " \t x"), [" \t", " x"]);
        assert_eq!(pieces(PreKind::Gpt2, "x ..."), ["x", " ..."]);
        assert_eq!(pieces(PreKind::Gpt2, "don't I'LL"), ["don", "'t", " I", "'", "LL"]);
    }

    #[test]
    fn digits_then_gpt2() {
        assert_eq!(pieces(PreKind::DigitsThenGpt2, "in 2024."), ["in", " ", "2", "0", "2", "4", "."]);
        // whitespace before a digit ends its piece: the run is taken whole
        assert_eq!(pieces(PreKind::DigitsThenGpt2, "a\n\n  1."), ["a", "\n\n  ", "1", "."]);
    }

    #[test]
    fn llama3_basics() {
        assert_eq!(
            pieces(PreKind::Llama3, "Hello, world!\n\n  12345 I'LL"),
            ["Hello", ",", " world", "!\n\n", " ", " ", "123", "45", " I", "'LL"]
        );
        assert_eq!(pieces(PreKind::Llama3, "a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(pieces(PreKind::Qwen2, "x 123"), ["x", " ", "1", "2", "3"]);
    }
    /// Pieces from HF `tokenizers`' `Split(Regex(pattern), "isolated")` with each family's regex
    /// (strings free of U+001C..U+001F and U+0085, where the two whitespace sets differ).
    #[test]
    fn agrees_with_hf_regex() {
        let cases: &[(PreKind, &str, &[&str])] = &[
            (
                PreKind::Llama3,
                "Hello, world!\n\n  12345 I'LL don't",
                &["Hello", ",", " world", "!\n\n", " ", " ", "123", "45", " I", "'LL", " don", "'t"],
            ),
            (PreKind::Llama3, "a \n\n b\r\n\r\nc", &["a", " \n\n", " b", "\r\n\r\n", "c"]),
            (PreKind::Llama3, "  x  \n  y\t\tz  ", &[" ", " x", "  \n", " ", " y", "\t", "\tz", "  "]),
            (
                PreKind::Llama3,
                "(abc) [12] 1234567 ..\n\n",
                &["(abc", ")", " [", "12", "]", " ", "123", "456", "7", " ..\n\n"],
            ),
            (PreKind::Llama3, "x'Re 'VE's", &["x", "'Re", " '", "VE", "'s"]),
            (
                PreKind::Llama3,
                "na\u{ef}ve caf\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{1f600}\u{1f44d} done",
                &["na\u{ef}ve", " caf\u{e9}", " \u{65e5}\u{672c}\u{8a9e}", " \u{1f600}\u{1f44d}", " done"],
            ),
            (PreKind::Llama3, " \t\n", &[" \t\n"]),
            (PreKind::Llama3, "a\n", &["a", "\n"]),
            (PreKind::Llama3, "a  ", &["a", "  "]),
            (PreKind::Llama3, "!!!\n\nfoo", &["!!!\n\n", "foo"]),
            (PreKind::Llama3, "\u{20ac}100 + 2.5%", &["\u{20ac}", "100", " +", " ", "2", ".", "5", "%"]),
            (PreKind::Llama3, "\n\n\nA", &["\n\n\n", "A"]),
            (PreKind::Llama3, "'", &["'"]),
            (PreKind::Llama3, "' ", &["'", " "]),
            (PreKind::Llama3, " 'x", &[" '", "x"]),
            (PreKind::Llama3, "x\u{a0}\u{a0}y\u{3000}z", &["x", "\u{a0}", "\u{a0}y", "\u{3000}z"]),
            (
                PreKind::Qwen2,
                "Hello, world!\n\n  12345 I'LL don't",
                &["Hello", ",", " world", "!\n\n", " ", " ", "1", "2", "3", "4", "5", " I", "'LL", " don", "'t"],
            ),
            (PreKind::Qwen2, "a \n\n b\r\n\r\nc", &["a", " \n\n", " b", "\r\n\r\n", "c"]),
            (PreKind::Qwen2, "  x  \n  y\t\tz  ", &[" ", " x", "  \n", " ", " y", "\t", "\tz", "  "]),
            (
                PreKind::Qwen2,
                "(abc) [12] 1234567 ..\n\n",
                &["(abc", ")", " [", "1", "2", "]", " ", "1", "2", "3", "4", "5", "6", "7", " ..\n\n"],
            ),
            (PreKind::Qwen2, "x'Re 'VE's", &["x", "'Re", " '", "VE", "'s"]),
            (
                PreKind::Qwen2,
                "na\u{ef}ve caf\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{1f600}\u{1f44d} done",
                &["na\u{ef}ve", " caf\u{e9}", " \u{65e5}\u{672c}\u{8a9e}", " \u{1f600}\u{1f44d}", " done"],
            ),
            (PreKind::Qwen2, " \t\n", &[" \t\n"]),
            (PreKind::Qwen2, "a\n", &["a", "\n"]),
            (PreKind::Qwen2, "a  ", &["a", "  "]),
            (PreKind::Qwen2, "!!!\n\nfoo", &["!!!\n\n", "foo"]),
            (PreKind::Qwen2, "\u{20ac}100 + 2.5%", &["\u{20ac}", "1", "0", "0", " +", " ", "2", ".", "5", "%"]),
            (PreKind::Qwen2, "\n\n\nA", &["\n\n\n", "A"]),
            (PreKind::Qwen2, "'", &["'"]),
            (PreKind::Qwen2, "' ", &["'", " "]),
            (PreKind::Qwen2, " 'x", &[" '", "x"]),
            (PreKind::Qwen2, "x\u{a0}\u{a0}y\u{3000}z", &["x", "\u{a0}", "\u{a0}y", "\u{3000}z"]),
            (
                PreKind::Gpt2,
                "Hello, world!\n\n  12345 I'LL don't",
                &["Hello", ",", " world", "!", "\n\n ", " 12345", " I", "'", "LL", " don", "'t"],
            ),
            (PreKind::Gpt2, "a \n\n b\r\n\r\nc", &["a", " \n\n", " b", "\r\n\r", "\n", "c"]),
            (PreKind::Gpt2, "  x  \n  y\t\tz  ", &[" ", " x", "  \n ", " y", "\t", "\t", "z", "  "]),
            (
                PreKind::Gpt2,
                "(abc) [12] 1234567 ..\n\n",
                &["(", "abc", ")", " [", "12", "]", " 1234567", " ..", "\n\n"],
            ),
            (PreKind::Gpt2, "x'Re 'VE's", &["x", "'", "Re", " '", "VE", "'s"]),
            (
                PreKind::Gpt2,
                "na\u{ef}ve caf\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{1f600}\u{1f44d} done",
                &["na\u{ef}ve", " caf\u{e9}", " \u{65e5}\u{672c}\u{8a9e}", " \u{1f600}\u{1f44d}", " done"],
            ),
            (PreKind::Gpt2, " \t\n", &[" \t\n"]),
            (PreKind::Gpt2, "a\n", &["a", "\n"]),
            (PreKind::Gpt2, "a  ", &["a", "  "]),
            (PreKind::Gpt2, "!!!\n\nfoo", &["!!!", "\n", "\n", "foo"]),
            (PreKind::Gpt2, "\u{20ac}100 + 2.5%", &["\u{20ac}", "100", " +", " 2", ".", "5", "%"]),
            (PreKind::Gpt2, "\n\n\nA", &["\n\n", "\n", "A"]),
            (PreKind::Gpt2, "'", &["'"]),
            (PreKind::Gpt2, "' ", &["'", " "]),
            (PreKind::Gpt2, " 'x", &[" '", "x"]),
            (PreKind::Gpt2, "x\u{a0}\u{a0}y\u{3000}z", &["x", "\u{a0}", "\u{a0}", "y", "\u{3000}", "z"]),
        ];
        for (kind, text, want) in cases {
            assert_eq!(pieces(*kind, text), *want, "{kind:?} {text:?}");
        }
    }
}
