//! Training data on the default model's tokenizer: JSONL text, prompt/completion and chat records
//! (ChatML from the GGUF template), loss masks, packing, held-out split, and bad records named by
//! file and line.
mod common;
use graft::train::data::{load, pack, split_holdout, ChatTemplate, Example};
use std::path::PathBuf;

fn write(name: &str, body: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graft-data-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn records_masks_and_chat_rendering() {
    let model = common::default_model();
    let tok = &model.tokenizer;
    let chat = ChatTemplate::from_jinja(model.chat_template().expect("the default model has a chat template")).unwrap();
    assert_eq!(chat.default_system.as_deref(), Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
    let p = write(
        "a.jsonl",
        concat!(
            "{\"text\": \"The sky is blue.\"}\n",
            "\n",
            "{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\"}\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n"
        ),
    );
    let ex = load(&p, tok, Some(&chat)).unwrap();
    assert_eq!(ex.len(), 3);
    assert!(ex[0].trained.iter().all(|t| *t));
    assert_eq!(String::from_utf8(tok.decode(&ex[0].tokens)).unwrap(), "The sky is blue.");
    // prompt/completion: the prompt is context, the completion and EOS are trained.
    let n_prompt = tok.encode("Q: 2+2?\nA:", false, false).len();
    assert!(ex[1].trained[..n_prompt].iter().all(|t| !*t) && ex[1].trained[n_prompt..].iter().all(|t| *t));
    assert_eq!(*ex[1].tokens.last().unwrap(), tok.eos().unwrap());
    // chat: the ChatML text, only the assistant's content and its <|im_end|> trained.
    let with_special = |ids: &[u32]| String::from_utf8(ids.iter().flat_map(|&i| tok.token_bytes_special(i).to_vec()).collect()).unwrap();
    let text = with_special(&ex[2].tokens);
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    );
    let trained: Vec<u32> = ex[2].tokens.iter().zip(&ex[2].trained).filter(|(_, t)| **t).map(|(x, _)| *x).collect();
    assert_eq!(with_special(&trained), "Hello!<|im_end|>");
    assert_eq!(tok.token_text(*trained.last().unwrap()), "<|im_end|>", "<|im_end|> is one special token");
}

#[test]
fn bad_records_name_file_and_line() {
    let model = common::default_model();
    let chat = ChatTemplate::from_jinja(model.chat_template().unwrap()).unwrap();
    for (body, want) in [
        ("{\"text\": \"ok\"}\n{\"text\": \"broken\"\n", "line 2: not JSON"),
        ("{\"text\": 3}\n", "line 1: \"text\" is not a string"),
        ("{\"prompt\": \"p\"}\n", "line 1: \"prompt\" without \"completion\""),
        ("[1, 2]\n", "line 1: not a JSON object"),
        ("{\"other\": 1}\n", "line 1: expected"),
        ("{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n", "line 2: no assistant message"),
        ("{\"messages\": [{\"role\": \"robot\", \"content\": \"Hi\"}]}\n", "line 1: message 0 needs"),
    ] {
        let p = write("bad.jsonl", body);
        let e = load(&p, &model.tokenizer, Some(&chat)).expect_err(body).to_string();
        assert!(e.contains("bad.jsonl") && e.contains(want), "{body:?}: {e}");
    }
    let p = write("chat.jsonl", "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\n");
    assert!(load(&p, &model.tokenizer, None).unwrap_err().to_string().contains("no supported chat template"));
    assert!(ChatTemplate::from_jinja("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}").is_err());
}

#[test]
fn packing_and_holdout() {
    let ex = vec![
        Example { tokens: vec![1, 2, 3, 4], trained: vec![false, false, true, true] },
        Example { tokens: vec![5, 6, 7], trained: vec![true, true, true] },
    ];
    let seqs = pack(&ex, 3);
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[0].input, vec![1, 2, 3]);
    assert_eq!(seqs[0].targets, vec![None, Some(3), Some(4)]);
    assert_eq!(seqs[1].input, vec![4, 5, 6]);
    assert_eq!(seqs[1].targets, vec![Some(5), Some(6), Some(7)]);
    let many: Vec<_> = (0..10).flat_map(|_| pack(&ex, 2)).collect();
    let n = many.len();
    let (train, eval) = split_holdout(many, 0.25);
    assert_eq!(train.len() + eval.len(), n);
    assert!(!eval.is_empty() && eval.len() * 3 <= n);
    // Plain text: one example, every token trained.
    let model = common::default_model();
    let p = write("t.txt", "Hello world, this is plain text.");
    let e = load(&p, &model.tokenizer, None).unwrap();
    assert_eq!(e.len(), 1);
    assert!(e[0].trained.iter().all(|t| *t));
}
