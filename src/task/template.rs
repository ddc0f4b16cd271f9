//! The minijinja environment task templates render in: no HTML escaping, undefined variables are
//! errors (a misspelt column fails when the task is loaded, not silently as ""), a template's
//! trailing newline is kept, and three filters the built-in tasks need:
//!
//! - `before(sep)` / `after(sep)`: the text before / after the first `sep` (an error when `sep`
//!   is absent), e.g. winogrande's partial scoring around `_`;
//! - `lm_eval_preprocess`: lm-evaluation-harness's hellaswag `preprocess`.

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// lm-eval's hellaswag `preprocess`: strip, " [title]" -> ". ", drop `[...]`, collapse double
/// spaces once.
pub fn lm_eval_preprocess(text: &str) -> String {
    let t = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    // Python re.sub("\\[.*?\\]", "", text): remove each shortest bracketed span.
    while let Some(open) = rest.find('[') {
        match rest[open + 1..].find(']') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

fn split_at(value: &str, sep: &str) -> Result<(String, String), Error> {
    value
        .split_once(sep)
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("`{sep}` does not occur in {value:?}"),
            )
        })
}

/// A fresh environment with the task filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("before", |v: String, sep: String| {
        split_at(&v, &sep).map(|(a, _)| a)
    });
    env.add_filter("after", |v: String, sep: String| {
        split_at(&v, &sep).map(|(_, b)| b)
    });
    env.add_filter("lm_eval_preprocess", |v: String| lm_eval_preprocess(&v));
    env
}

/// A minijinja error as one line: its message and, when it has one, the cause.
pub fn error_text(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_matches_python() {
        // Expected values by hand from lm-eval's hellaswag utils.preprocess.
        assert_eq!(
            lm_eval_preprocess(" Home: [header] How to x [title] Do it.  Now "),
            "Home: How to x. Do it. Now"
        );
        assert_eq!(lm_eval_preprocess("a [step] b [x"), "a b [x");
    }

    #[test]
    fn filters_and_strictness() {
        let env = environment();
        let r = |src: &str, ctx: minijinja::Value| env.render_str(src, ctx);
        let ctx = minijinja::context! { q => "Sarah beat _ so she won.", c => "<b>" };
        assert_eq!(
            r(
                "{{ q | before(\"_\") }}{{ c }}|{{ q | after(\"_\") | trim }}",
                ctx.clone()
            )
            .unwrap(),
            "Sarah beat <b>|so she won."
        );
        assert_eq!(
            r("{{ [\"yes\", \"no\"][1] }}\n", ctx.clone()).unwrap(),
            "no\n"
        );
        let e = r("{{ c | before(\"_\") }}", ctx.clone()).unwrap_err();
        assert!(
            error_text(&e).contains("`_` does not occur"),
            "{}",
            error_text(&e)
        );
        let e = r("{{ questoin }}", ctx).unwrap_err();
        assert!(error_text(&e).contains("undefined"), "{}", error_text(&e));
    }
}
