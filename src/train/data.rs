//! Training data: plain text (packed into sequences), or JSONL with one record per line —
//! `{"text"}` (every token trained), `{"prompt", "completion"}` (loss on the completion only) or
//! chat `{"messages": [{"role", "content"}]}` rendered with the model's chat template (ChatML,
//! as `tokenizer.chat_template` gives it; loss on the assistant turns only). Records become token
//! streams with a per-token loss mask, packed into fixed-length sequences with next-token targets,
//! and split into training and held-out sets. A bad record is an error naming the file and line.
use crate::model::Tokenizer;
use crate::{Error, Result};
use std::path::Path;

/// One record's tokens and which of them are trained (predicted with loss).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// `trained[i]`: token `i` is a prediction target.
    pub trained: Vec<bool>,
}

/// One training sequence: inputs and their next-token targets (`None`: no loss at that position).
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// Input tokens.
    pub input: Vec<u32>,
    /// Target of each input position.
    pub targets: Vec<Option<u32>>,
}

/// A chat template graft can render: ChatML with an optional default system prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTemplate {
    /// System prompt added when the conversation has none.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// Recognises a ChatML Jinja template (`<|im_start|>role\ncontent<|im_end|>\n`), with the
    /// default system turn SmolLM-style templates add; other templates are refused.
    pub fn from_jinja(t: &str) -> Result<ChatTemplate> {
        if !t.contains("<|im_start|>") || !t.contains("<|im_end|>") || !t.contains("message['content']") {
            return Err(Error::invalid("chat template", "only ChatML templates (<|im_start|> ... <|im_end|>) are supported"));
        }
        let default_system = if t.contains("!= 'system'") {
            let start = t.find("<|im_start|>system\n").map(|i| i + "<|im_start|>system\n".len());
            start.and_then(|s| t[s..].find("<|im_end|>").map(|e| t[s..s + e].to_string()))
        } else {
            None
        };
        Ok(ChatTemplate { default_system })
    }

    /// Renders `(role, content)` turns as (text, trained) pieces: assistant contents and their
    /// `<|im_end|>` are trained, everything else is context.
    pub fn render(&self, turns: &[(String, String)]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        if turns.first().is_none_or(|t| t.0 != "system") {
            if let Some(s) = &self.default_system {
                out.push((format!("<|im_start|>system\n{s}<|im_end|>\n"), false));
            }
        }
        for (role, content) in turns {
            out.push((format!("<|im_start|>{role}\n"), false));
            let trained = role == "assistant";
            out.push((format!("{content}<|im_end|>"), trained));
            out.push(("\n".to_string(), false));
        }
        out
    }
}

/// Tokenizes `(text, trained)` pieces one after another (special tokens parsed), optionally after BOS.
fn tokenize_pieces(tok: &Tokenizer, pieces: &[(String, bool)], bos: bool) -> Example {
    let mut ex = Example { tokens: Vec::new(), trained: Vec::new() };
    if bos {
        if let Some(b) = tok.bos() {
            ex.tokens.push(b);
            ex.trained.push(false);
        }
    }
    for (text, trained) in pieces {
        let ids = tok.encode(text, false, true);
        ex.trained.extend(std::iter::repeat_n(*trained, ids.len()));
        ex.tokens.extend(ids);
    }
    ex
}

/// Reads a data file: `.jsonl` (or `.json` lines) records, anything else as plain text (one
/// example, every token trained). `chat` renders `messages` records.
pub fn load(path: &Path, tok: &Tokenizer, chat: Option<&ChatTemplate>) -> Result<Vec<Example>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bos = tok.add_bos();
    let is_jsonl = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if !is_jsonl {
        let ex = tokenize_pieces(tok, &[(text, true)], bos);
        if ex.tokens.len() < 2 {
            return Err(Error::format(&file, "text", "fewer than two tokens"));
        }
        return Ok(vec![ex]);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::format(&file, &at, format!("not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| Error::format(&file, &at, "not a JSON object"))?;
        let s = |k: &str| -> Result<Option<String>> {
            match obj.get(k) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::format(&file, &at, format!("\"{k}\" is not a string"))),
            }
        };
        let pieces = if let Some(m) = obj.get("messages") {
            let chat = chat.ok_or_else(|| Error::format(&file, &at, "a chat record, but the model has no supported chat template"))?;
            let arr = m.as_array().ok_or_else(|| Error::format(&file, &at, "\"messages\" is not an array"))?;
            let mut turns = Vec::with_capacity(arr.len());
            for (j, t) in arr.iter().enumerate() {
                let role = t.get("role").and_then(|r| r.as_str());
                let content = t.get("content").and_then(|c| c.as_str());
                match (role, content) {
                    (Some(r), Some(c)) if matches!(r, "system" | "user" | "assistant") => turns.push((r.to_string(), c.to_string())),
                    _ => return Err(Error::format(&file, &at, format!("message {j} needs \"role\" (system, user or assistant) and \"content\" strings"))),
                }
            }
            if !turns.iter().any(|t| t.0 == "assistant") {
                return Err(Error::format(&file, &at, "no assistant message to train on"));
            }
            chat.render(&turns)
        } else if let Some(p) = s("prompt")? {
            let c = s("completion")?.ok_or_else(|| Error::format(&file, &at, "\"prompt\" without \"completion\""))?;
            let eos = tok.eos().map(|e| tok.token_text(e).to_string()).unwrap_or_default();
            vec![(p, false), (format!("{c}{eos}"), true)]
        } else if let Some(t) = s("text")? {
            vec![(t, true)]
        } else {
            return Err(Error::format(&file, &at, "expected \"text\", \"prompt\"/\"completion\" or \"messages\""));
        };
        let ex = tokenize_pieces(tok, &pieces, bos);
        if ex.trained.iter().any(|t| *t) {
            out.push(ex);
        } else {
            return Err(Error::format(&file, &at, "no token to train on"));
        }
    }
    if out.is_empty() {
        return Err(Error::format(&file, "records", "no records"));
    }
    Ok(out)
}

/// Packs examples one after another into sequences of `seq_len` inputs, each position's target
/// the next token when that token is trained. The last partial sequence is kept if it has a target.
pub fn pack(examples: &[Example], seq_len: usize) -> Vec<Sequence> {
    assert!(seq_len > 0, "pack: seq_len 0");
    let mut tokens = Vec::new();
    let mut trained = Vec::new();
    for e in examples {
        tokens.extend_from_slice(&e.tokens);
        trained.extend_from_slice(&e.trained);
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start + 1 < tokens.len() {
        let end = (start + seq_len).min(tokens.len() - 1);
        let input = tokens[start..end].to_vec();
        let targets: Vec<Option<u32>> = (start..end).map(|i| trained[i + 1].then_some(tokens[i + 1])).collect();
        if targets.iter().any(|t| t.is_some()) {
            out.push(Sequence { input, targets });
        }
        start = end;
    }
    out
}

/// Splits sequences into (training, held-out): every `k`-th sequence is held out, `k` chosen so that
/// about `fraction` are (at least one when `fraction > 0` and there are two or more sequences).
pub fn split_holdout(seqs: Vec<Sequence>, fraction: f64) -> (Vec<Sequence>, Vec<Sequence>) {
    if fraction <= 0.0 || seqs.len() < 2 {
        return (seqs, Vec::new());
    }
    let k = ((1.0 / fraction).round() as usize).clamp(2, seqs.len());
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for (i, s) in seqs.into_iter().enumerate() {
        if i % k == k - 1 {
            eval.push(s);
        } else {
            train.push(s);
        }
    }
    (train, eval)
}

/// Training and held-out sequences of `seq_len` tokens from the file at `path` (text or JSONL, chat
/// records rendered with `model`'s chat template), about `eval_fraction` held out.
pub fn load_for_training(path: &Path, model: &crate::model::Model, seq_len: usize, eval_fraction: f64) -> Result<(Vec<Sequence>, Vec<Sequence>)> {
    if seq_len == 0 {
        return Err(Error::invalid("train", "sequence length 0"));
    }
    let chat = model.chat_template().and_then(|t| ChatTemplate::from_jinja(t).ok());
    let examples = load(path, &model.tokenizer, chat.as_ref())?;
    let (train, eval) = split_holdout(pack(&examples, seq_len), eval_fraction);
    if train.is_empty() {
        return Err(Error::format(path.display().to_string(), "records", "no training sequences"));
    }
    Ok((train, eval))
}
