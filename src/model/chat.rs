//! Chat templates (HF's Jinja `chat_template`, rendered with minijinja) and prompt encoding.

use minijinja::Environment;
use serde::Serialize;

use super::error::{ModelError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: &str) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// Render `template` for `messages`, with the generation prompt appended when
/// `add_generation_prompt` (as `apply_chat_template` does). `bos_token`/`eos_token` are
/// available to the template, as in transformers.
pub fn render_chat(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    ChatTemplate::new(template)?.render(
        messages,
        add_generation_prompt,
        &[("bos_token", bos_token), ("eos_token", eos_token)],
    )
}

/// A chat template compiled the way transformers compiles one for `apply_chat_template`
/// (`transformers/utils/chat_template_utils.py`, 5.24: `_compile_jinja_template`):
/// `trim_blocks` and `lstrip_blocks`, `{% break %}` / `{% continue %}`, Python's string and dict
/// methods (`.strip()`, `.split()`, `.items()`, ...: minijinja-contrib's pycompat), a `tojson`
/// that is Python's `json.dumps` (no HTML escaping, `ensure_ascii=False`, `indent`,
/// `separators`, `sort_keys`, insertion order kept), `raise_exception` and `strftime_now`, and
/// values printed as Python prints them (`True`, `None`, `['a', 1]`). transformers'
/// `{% generation %}` blocks render their body unchanged. What this was checked against:
/// `tests/fixtures/chat/golden.json` (renderings by transformers itself).
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The template has `{% generation %}` blocks (their output is marked while rendering).
    generation: bool,
}

/// A conversation rendered for training: the text and the byte ranges of the assistant's turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedChat {
    pub text: String,
    pub assistant: Vec<std::ops::Range<usize>>,
}

/// Where `{% generation %}` output starts and ends while rendering: Unicode noncharacters, which
/// are reserved for a program's internal use and never stand for text.
const GEN_START: char = '\u{FDD0}';
const GEN_END: char = '\u{FDD1}';

impl ChatTemplate {
    pub fn new(template: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_function(
            "strftime_now",
            |fmt: String| -> std::result::Result<String, minijinja::Error> {
                crate::sys::strftime_now(&fmt).ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("strftime_now({fmt:?}) failed"),
                    )
                })
            },
        );
        let (source, generation) = generation_as_marked_blocks(template);
        env.add_template_owned("chat", source).map_err(bad)?;
        Ok(Self { env, generation })
    }

    /// Render `messages` (anything that serializes to a list of role/content maps) with the
    /// named special tokens (`bos_token`, `eos_token`, ...) in scope; `tools` and `documents`
    /// are `none`, as transformers passes them when not given.
    pub fn render<M: Serialize + ?Sized>(
        &self,
        messages: &M,
        add_generation_prompt: bool,
        tokens: &[(&str, &str)],
    ) -> Result<String> {
        self.render_with(&RenderInput {
            messages: minijinja::Value::from_serialize(messages),
            add_generation_prompt,
            continue_final_message: false,
            vars: tokens
                .iter()
                .map(|(k, v)| (k.to_string(), minijinja::Value::from(*v)))
                .collect(),
        })
    }

    /// `apply_chat_template(tokenize=False)` in full: message keys whose value is `none` are
    /// dropped first (transformers does), `vars` (special tokens, `tools`, `documents`, extra
    /// keyword arguments) are in scope, and `continue_final_message` leaves the last message
    /// open: its content is rendered with a tag after it and the text is cut at the tag
    /// (trailing whitespace trimmed where the template trimmed the message), as transformers'
    /// `CONTINUE_FINAL_MESSAGE_TAG` does.
    pub fn render_with(&self, input: &RenderInput) -> Result<String> {
        let (text, _) = self.render_marked(input)?;
        Ok(text)
    }

    /// Whether the template marks assistant output with `{% generation %}` blocks.
    pub fn has_generation(&self) -> bool {
        self.generation
    }

    /// `messages` rendered whole, with the byte ranges the assistant's turns take in the text.
    ///
    /// - A template with `{% generation %}` blocks: the ranges are what those blocks rendered, as
    ///   transformers' `return_assistant_tokens_mask` takes them.
    /// - Any other template: for each assistant message `i`, messages `..i` rendered with the
    ///   generation prompt (`P`) and messages `..=i` without it (`Q`) must be prefixes of the
    ///   whole, `P` of `Q`; the turn is `Q` minus `P`: the reply and whatever the template closes
    ///   it with (`<|im_end|>\n`, `<|eot_id|>`). A template that renders earlier turns
    ///   differently once later ones follow is an error naming the message.
    pub fn render_conversation(
        &self,
        messages: &[minijinja::Value],
        vars: &[(String, minijinja::Value)],
    ) -> Result<RenderedChat> {
        let input = |n: usize, agp: bool| RenderInput {
            messages: minijinja::Value::from(messages[..n].to_vec()),
            add_generation_prompt: agp,
            continue_final_message: false,
            vars: vars.to_vec(),
        };
        let (text, marked) = self.render_marked(&input(messages.len(), false))?;
        if self.generation {
            return Ok(RenderedChat {
                text,
                assistant: marked,
            });
        }
        let mut assistant = vec![];
        for (i, m) in messages.iter().enumerate() {
            let role = m.get_attr("role").unwrap_or_default();
            if role.as_str() != Some("assistant") {
                continue;
            }
            let (before, _) = self.render_marked(&input(i, true))?;
            let (through, _) = self.render_marked(&input(i + 1, false))?;
            if !(through.starts_with(&before) && text.starts_with(&through)) {
                return Err(ModelError::InvalidInput(format!(
                    "chat template: message {i} (assistant) cannot be located: the rendering of the messages before it with the generation prompt, then with it, are not prefixes of the whole conversation (the template renders earlier turns differently once later ones follow)"
                )));
            }
            assistant.push(before.len()..through.len());
        }
        Ok(RenderedChat { text, assistant })
    }

    /// The rendering and the byte ranges of its `{% generation %}` output.
    fn render_marked(&self, input: &RenderInput) -> Result<(String, Vec<std::ops::Range<usize>>)> {
        const TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";
        if input.continue_final_message && input.add_generation_prompt {
            return Err(ModelError::InvalidInput(
                "chat template: continue_final_message and add_generation_prompt are not compatible"
                    .into(),
            ));
        }
        let mut messages: Vec<minijinja::Value> = input
            .messages
            .try_iter()
            .map_err(bad)?
            .map(|m| without_none(&m))
            .collect();
        if input.continue_final_message {
            let Some(last) = messages.last_mut() else {
                return Err(ModelError::InvalidInput(
                    "chat template: continue_final_message needs a message".into(),
                ));
            };
            let content = last.get_attr("content").map_err(bad)?;
            let Some(text) = content.as_str() else {
                return Err(ModelError::InvalidInput(
                    "chat template: continue_final_message needs a text content".into(),
                ));
            };
            *last = with_key(last, "content", format!("{text}{TAG}").into());
        }
        let tmpl = self.env.get_template("chat").map_err(bad)?;
        let mut ctx: std::collections::BTreeMap<String, minijinja::Value> =
            input.vars.iter().cloned().collect();
        // transformers passes both, as None when not given
        for name in ["tools", "documents"] {
            ctx.entry(name.into()).or_insert(().into());
        }
        ctx.insert("messages".into(), minijinja::Value::from(messages));
        ctx.insert(
            "add_generation_prompt".into(),
            input.add_generation_prompt.into(),
        );
        let raw = tmpl.render(ctx).map_err(bad)?;
        let (rendered, spans) = if self.generation {
            strip_marks(&raw)?
        } else {
            (raw, vec![])
        };
        if !input.continue_final_message {
            return Ok((rendered, spans));
        }
        let tag = TAG.trim_end();
        let text = match rendered.rfind(tag) {
            Some(at) if rendered[at..].starts_with(TAG) => rendered[..at].to_string(),
            Some(at) => rendered[..at].trim_end().to_string(),
            None => {
                return Err(ModelError::InvalidInput(
                    "chat template: continue_final_message: the template does not render the final message's content".into(),
                ));
            }
        };
        let spans = spans
            .into_iter()
            .filter(|r| r.start < text.len())
            .map(|r| r.start..r.end.min(text.len()))
            .collect();
        Ok((text, spans))
    }
}

/// The variables of one rendering ([`ChatTemplate::render_with`]).
pub struct RenderInput {
    pub messages: minijinja::Value,
    pub add_generation_prompt: bool,
    pub continue_final_message: bool,
    /// Special tokens (`bos_token`, ...), `tools`, `documents` and extra keyword arguments.
    pub vars: Vec<(String, minijinja::Value)>,
}

/// The `(key, value)` pairs of a map in its order (empty for anything else).
fn entries(m: &minijinja::Value) -> Vec<(minijinja::Value, minijinja::Value)> {
    if m.kind() != minijinja::value::ValueKind::Map {
        return Vec::new();
    }
    m.try_iter()
        .map(|keys| {
            keys.map(|k| {
                let v = m.get_item(&k).unwrap_or_default();
                (k, v)
            })
            .collect()
        })
        .unwrap_or_default()
}

/// A message map without its `none` values (transformers drops them before rendering).
fn without_none(m: &minijinja::Value) -> minijinja::Value {
    if m.kind() != minijinja::value::ValueKind::Map {
        return m.clone();
    }
    minijinja::Value::from_iter(entries(m).into_iter().filter(|(_, v)| !v.is_none()))
}

/// `m` with `key` set to `value` (order kept).
fn with_key(m: &minijinja::Value, key: &str, value: minijinja::Value) -> minijinja::Value {
    minijinja::Value::from_iter(entries(m).into_iter().map(|(k, v)| {
        let v = if k.as_str() == Some(key) {
            value.clone()
        } else {
            v
        };
        (k, v)
    }))
}

fn bad(e: minijinja::Error) -> ModelError {
    ModelError::InvalidInput(format!("chat template: {e:#}"))
}

/// transformers' `{% generation %}...{% endgeneration %}` (its AssistantTracker extension) records
/// where the assistant's output is and renders its body unchanged. Each tag becomes two
/// always-true `if` tags around a marker (`{% if true %}{{ START }}{% if true %}` ...
/// `{% endif %}{{ END }}{% endif %}`): the outer tag keeps the original's left whitespace control
/// (`-`, lstrip_blocks), the inner one its right (`-`, trim_blocks), so the text renders exactly
/// as before, with markers where the block's output starts and ends. Also says whether there
/// was any such block.
fn generation_as_marked_blocks(template: &str) -> (String, bool) {
    static TAGS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{%(-|\+)?\s*(end)?generation\s*(-|\+)?%\}").expect("a valid regex")
    });
    let found = TAGS.is_match(template);
    let source = TAGS.replace_all(template, |c: &regex::Captures| {
        let open = c.get(1).map_or("", |m| m.as_str());
        let close = c.get(3).map_or("", |m| m.as_str());
        if c.get(2).is_some() {
            format!("{{%{open} endif %}}{{{{ '{GEN_END}' }}}}{{% endif {close}%}}")
        } else {
            format!("{{%{open} if true %}}{{{{ '{GEN_START}' }}}}{{% if true {close}%}}")
        }
    });
    (source.into_owned(), found)
}

/// The text without its generation markers, and the byte ranges between each start and end.
fn strip_marks(raw: &str) -> Result<(String, Vec<std::ops::Range<usize>>)> {
    let mut text = String::with_capacity(raw.len());
    let mut spans = vec![];
    let mut open: Option<usize> = None;
    for c in raw.chars() {
        match (c, open) {
            (GEN_START, None) => open = Some(text.len()),
            (GEN_END, Some(start)) => {
                spans.push(start..text.len());
                open = None;
            }
            (GEN_START | GEN_END, _) => {
                return Err(ModelError::InvalidInput(
                    "chat template: `{% generation %}` blocks are nested or unbalanced, or the messages contain U+FDD0 / U+FDD1".into(),
                ));
            }
            (c, _) => text.push(c),
        }
    }
    if open.is_some() {
        return Err(ModelError::InvalidInput(
            "chat template: a `{% generation %}` block is not closed".into(),
        ));
    }
    Ok((text, spans))
}

/// Values printed as Python's `str()` prints them, as jinja2 does: `True`/`False`, `None`, and
/// lists and dicts as their `repr` (`['a', 1]`, `{'k': 'v'}`); undefined prints nothing.
fn python_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Bool | ValueKind::None | ValueKind::Seq | ValueKind::Map => out
            .write_str(&py_repr(value))
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `repr` of a template value.
fn py_repr(v: &minijinja::Value) -> String {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|i| i.map(|x| py_repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = entries(v)
                .iter()
                .map(|(k, val)| format!("{}: {}", py_repr(k), py_repr(val)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

/// transformers' `tojson` filter: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)` (positional `ensure_ascii` first, as in its signature).
fn tojson(
    value: &minijinja::Value,
    ensure_ascii: Option<bool>,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    let ascii = match kwargs.get::<Option<bool>>("ensure_ascii")? {
        Some(a) => a,
        None => ensure_ascii.unwrap_or(false),
    };
    let indent: Option<minijinja::Value> = kwargs.get("indent")?;
    let indent = match indent {
        Some(i) if i.is_none() => None,
        Some(i) if i.as_i64().is_some() => {
            Some(" ".repeat(i.as_i64().unwrap_or(0).max(0) as usize))
        }
        Some(i) => Some(i.as_str().unwrap_or_default().to_string()),
        None => None,
    };
    let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([a, b]) => (a.clone(), b.clone()),
        _ if indent.is_some() => (",".into(), ": ".into()),
        _ => (", ".into(), ": ".into()),
    };
    let mut out = String::new();
    let f = JsonFormat {
        ascii,
        indent,
        sort,
        item_sep,
        key_sep,
    };
    f.write(value, 0, &mut out)?;
    Ok(minijinja::Value::from_safe_string(out))
}

/// Python's `json.dumps` layout.
struct JsonFormat {
    ascii: bool,
    indent: Option<String>,
    sort: bool,
    item_sep: String,
    key_sep: String,
}

impl JsonFormat {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(i) = &self.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(i);
            }
        }
    }

    /// Walks minijinja's values directly, so maps keep their insertion order (as Python's
    /// dicts do) unless `sort_keys`.
    fn write(
        &self,
        v: &minijinja::Value,
        level: usize,
        out: &mut String,
    ) -> std::result::Result<(), minijinja::Error> {
        use minijinja::value::ValueKind;
        match v.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&v.to_string()),
            ValueKind::String | ValueKind::Bytes => {
                self.string(v.as_str().unwrap_or_default(), out)
            }
            ValueKind::Map => {
                let mut pairs = entries(v);
                if pairs.is_empty() {
                    out.push_str("{}");
                    return Ok(());
                }
                if self.sort {
                    pairs.sort_by_key(|(k, _)| k.to_string());
                }
                out.push('{');
                for (i, (k, val)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.string(&k.to_string(), out);
                    out.push_str(&self.key_sep);
                    self.write(val, level + 1, out)?;
                }
                self.newline(level, out);
                out.push('}');
            }
            _ => {
                let items: Vec<minijinja::Value> = v.try_iter()?.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_sep);
                    }
                    self.newline(level + 1, out);
                    self.write(x, level + 1, out)?;
                }
                self.newline(level, out);
                out.push(']');
            }
        }
        Ok(())
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ascii && !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/chat")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    // Every case of tests/fixtures/chat/golden.json: what transformers 5.24's
    // `apply_chat_template(tokenize=False)` rendered (make_golden.py beside it), for SmolLM2's
    // template (from its GGUF), LLaMA-3's, and two templates that exercise jinja2 features.
    #[test]
    fn renders_byte_for_byte_as_transformers() {
        // minijinja's own maps keep the file's key order, as Python's dicts do
        let cases: Vec<minijinja::Value> = serde_json::from_str(&fixture("golden.json")).unwrap();
        let mut failed = vec![];
        for c in &cases {
            let get = |k: &str| c.get_attr(k).unwrap_or_default();
            let name = get("name").to_string();
            let t = ChatTemplate::new(&fixture(get("template").as_str().unwrap())).unwrap();
            let mut vars = vec![];
            for k in ["bos_token", "eos_token", "tools", "documents"] {
                if !get(k).is_undefined() {
                    vars.push((k.to_string(), get(k)));
                }
            }
            if let Ok(extra) = get("extra_kwargs").try_iter() {
                for k in extra {
                    let v = get("extra_kwargs").get_item(&k).unwrap();
                    vars.push((k.to_string(), v));
                }
            }
            let got = t.render_with(&RenderInput {
                messages: get("messages"),
                add_generation_prompt: get("add_generation_prompt").is_true(),
                continue_final_message: get("continue_final_message").is_true(),
                vars,
            });
            let want = get("rendered");
            match (want.as_str(), got) {
                (Some(w), Ok(g)) if w == g => {}
                (None, Err(e))
                    if e.to_string().contains(
                        get("error")
                            .as_str()
                            .unwrap_or("")
                            .split('.')
                            .next()
                            .unwrap_or(""),
                    ) => {}
                (w, g) => failed.push(format!(
                    "{name}:\n want {w:?} / {}\n got  {g:?}",
                    get("error")
                )),
            }
        }
        assert!(
            failed.is_empty(),
            "{} of {}:\n{}",
            failed.len(),
            cases.len(),
            failed.join("\n")
        );
    }

    fn golden(prefix: &str) -> Vec<serde_json::Value> {
        let cases: Vec<serde_json::Value> = serde_json::from_str(&fixture("golden.json")).unwrap();
        cases
            .into_iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    }

    fn messages(c: &serde_json::Value) -> Vec<minijinja::Value> {
        c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(minijinja::Value::from_serialize)
            .collect()
    }

    fn tokens(c: &serde_json::Value) -> Vec<(String, minijinja::Value)> {
        ["bos_token", "eos_token"]
            .iter()
            .map(|k| (k.to_string(), c[*k].as_str().unwrap().into()))
            .collect()
    }

    // The byte ranges of `{% generation %}` output equal transformers' own spans
    // (`generation_spans_bytes` in golden.json, recorded from `apply_chat_template(...,
    // return_assistant_tokens_mask=True)`), with and without the generation prompt, and the
    // text is unchanged by the markers.
    #[test]
    fn generation_blocks_give_transformers_spans() {
        let cases = golden("generation/");
        assert_eq!(cases.len(), 6);
        let t = ChatTemplate::new(&fixture("generation.jinja")).unwrap();
        assert!(t.has_generation());
        for c in &cases {
            let (text, spans) = t
                .render_marked(&RenderInput {
                    messages: minijinja::Value::from(messages(c)),
                    add_generation_prompt: c["add_generation_prompt"].as_bool().unwrap(),
                    continue_final_message: false,
                    vars: tokens(c),
                })
                .unwrap();
            assert_eq!(text, c["rendered"].as_str().unwrap(), "{}", c["name"]);
            let want: Vec<std::ops::Range<usize>> = c["generation_spans_bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[0].as_u64().unwrap() as usize..s[1].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(spans, want, "{}", c["name"]);
        }
    }

    // Templates without `{% generation %}` (SmolLM2's from its GGUF, Llama 3's): each assistant
    // turn is the rendering through it minus the rendering before it with the generation prompt.
    // Expected texts read off the golden renderings by hand.
    #[test]
    fn assistant_turns_of_templates_without_generation_blocks() {
        for (file, want) in [
            (
                "smollm2.jinja",
                ["Hello! How can I help?<|im_end|>\n", "7<|im_end|>\n"],
            ),
            (
                "llama3.jinja",
                ["Hello! How can I help?<|eot_id|>", "7<|eot_id|>"],
            ),
        ] {
            let c = &golden(&format!("{}/multi_turn/agp=false", &file[..file.len() - 6]))[0];
            let t = ChatTemplate::new(&fixture(file)).unwrap();
            assert!(!t.has_generation());
            let r = t.render_conversation(&messages(c), &tokens(c)).unwrap();
            assert_eq!(r.text, c["rendered"].as_str().unwrap());
            let got: Vec<&str> = r.assistant.iter().map(|s| &r.text[s.clone()]).collect();
            assert_eq!(got, want, "{file}");
        }
        // generation.jinja through the same call: its own blocks win
        let c = &golden("generation/multi_turn/agp=false")[0];
        let t = ChatTemplate::new(&fixture("generation.jinja")).unwrap();
        let r = t.render_conversation(&messages(c), &tokens(c)).unwrap();
        let got: Vec<&str> = r.assistant.iter().map(|s| &r.text[s.clone()]).collect();
        assert_eq!(got, ["Hello! How can I help?<|im_end|>", "7<|im_end|>"]);
    }

    // A template that renders a turn differently once later turns follow (here: only the last
    // assistant reply keeps its text, as reasoning templates drop earlier thoughts) cannot be
    // split into turns; the error names the message.
    #[test]
    fn a_template_that_rewrites_earlier_turns_is_refused() {
        let t = ChatTemplate::new(
            "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' and not loop.last %}...{% else %}{{ m.content }}{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
        )
        .unwrap();
        let msgs: Vec<minijinja::Value> = ["user", "assistant", "user", "assistant"]
            .iter()
            .map(|r| {
                minijinja::Value::from_serialize(serde_json::json!({"role": r, "content": "x"}))
            })
            .collect();
        let e = t.render_conversation(&msgs, &[]).unwrap_err().to_string();
        assert!(e.contains("message 1 (assistant) cannot be located"), "{e}");
        let one = t.render_conversation(&msgs[..2], &[]).unwrap();
        assert_eq!(one.text, "<user>x<assistant>x");
        assert_eq!(one.assistant, vec![18..19]);
    }

    #[test]
    fn unbalanced_generation_markers_are_an_error() {
        let t = ChatTemplate::new("{% generation %}{{ messages[0].content }}{% endgeneration %}")
            .unwrap();
        let bad = minijinja::Value::from_serialize(
            serde_json::json!([{"role": "user", "content": "a\u{FDD1}b"}]),
        );
        let e = t
            .render_with(&RenderInput {
                messages: bad,
                add_generation_prompt: false,
                continue_final_message: false,
                vars: vec![],
            })
            .unwrap_err();
        assert!(e.to_string().contains("U+FDD0"), "{e}");
    }
}
