//! Literal values: KDL -> [`Value`], and a value against a registry [`Ty`]. Used by the shape pass
//! for literals and by the resolve pass for every value of a variable at every place it is used.

use kdl::KdlValue;

use crate::diag::{Code, suggest_help};
use crate::ir::Value;
use crate::schema::{TASKS, Ty};

/// Why a value does not fit: the code, the message and a help line.
#[derive(Debug, Clone, PartialEq)]
pub struct Misfit {
    pub code: Code,
    pub message: String,
    pub help: String,
}

/// A KDL literal as a [`Value`]; `null` and integers beyond i64 do not fit any option.
pub fn from_kdl(v: &KdlValue) -> Result<Value, Misfit> {
    match v {
        KdlValue::String(s) => Ok(Value::Str(s.clone())),
        KdlValue::Integer(i) => i64::try_from(*i).map(Value::Int).map_err(|_| Misfit {
            code: Code::OutOfRange,
            message: format!("integer {i} does not fit in 64 bits"),
            help: "use a smaller number".into(),
        }),
        KdlValue::Float(f) if f.is_finite() => Ok(Value::Float(*f)),
        KdlValue::Float(f) => Err(Misfit {
            code: Code::OutOfRange,
            message: format!("{f} is not a finite number"),
            help: "use a finite number".into(),
        }),
        KdlValue::Bool(b) => Ok(Value::Bool(*b)),
        KdlValue::Null => Err(Misfit {
            code: Code::WrongType,
            message: "#null is not a value any option takes".into(),
            help: "leave the option out to use its default".into(),
        }),
    }
}

fn wrong_type(v: &Value, ty: &Ty, what: &str) -> Misfit {
    let hint = match (v, ty) {
        (Value::Str(s), Ty::Int { .. } | Ty::Float { .. }) if s.parse::<f64>().is_ok() => {
            format!("write the number without quotes: {s}")
        }
        (Value::Str(s), Ty::Bool) if s == "true" || s == "false" => {
            format!("KDL 2 booleans are #{s}")
        }
        (_, Ty::Str | Ty::Path | Ty::Glob | Ty::Choice(_) | Ty::Stage(_)) => {
            format!("quote it: \"{v}\"")
        }
        _ => format!("{what} takes a {}", ty.describe()),
    };
    Misfit {
        code: Code::WrongType,
        message: format!(
            "{what} expects {}, found {} `{v}`",
            ty.base_name(),
            v.type_name()
        ),
        help: hint,
    }
}

/// Check `v` against `ty`; `what` names the place (`rank`, `batch micro=`).
pub fn fits(v: &Value, ty: &Ty, what: &str) -> Result<(), Misfit> {
    let range = |msg: String| Misfit {
        code: Code::OutOfRange,
        message: format!("{what} is out of range: {msg}"),
        help: format!("{what} takes a {}", ty.describe()),
    };
    match (ty, v) {
        (Ty::Int { min, max }, Value::Int(i)) => {
            if i < min || i > max {
                return Err(range(format!("{i} is not a {}", ty.describe())));
            }
            Ok(())
        }
        (
            Ty::Float {
                min,
                max,
                min_open,
                max_open,
            },
            Value::Int(_) | Value::Float(_),
        ) => {
            let x = v.as_f64().unwrap_or(f64::NAN);
            let low = if *min_open { x <= *min } else { x < *min };
            let high = if *max_open { x >= *max } else { x > *max };
            if low || high {
                return Err(range(format!("{x} is not a {}", ty.describe())));
            }
            Ok(())
        }
        (Ty::Str | Ty::Path | Ty::Glob | Ty::Stage(_), Value::Str(_))
        | (Ty::Bool, Value::Bool(_)) => Ok(()),
        (Ty::Choice(c), Value::Str(s)) => {
            if c.contains(&s.as_str()) {
                return Ok(());
            }
            let code = if *c == TASKS {
                Code::UnknownTask
            } else {
                Code::InvalidChoice
            };
            Err(Misfit {
                code,
                message: format!("`{s}` is not a valid value for {what}"),
                help: suggest_help(s, c, "expected one of"),
            })
        }
        _ => Err(wrong_type(v, ty, what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_types_and_choices() {
        let rank = Ty::int(1, 10);
        assert!(fits(&Value::Int(1), &rank, "rank").is_ok());
        assert_eq!(
            fits(&Value::Int(0), &rank, "rank").unwrap_err().code,
            Code::OutOfRange
        );
        let e = fits(&Value::Str("8".into()), &rank, "rank").unwrap_err();
        assert_eq!(e.code, Code::WrongType);
        assert!(e.help.contains("without quotes"));
        assert_eq!(
            fits(&Value::Float(1.0), &Ty::fraction(), "dropout")
                .unwrap_err()
                .code,
            Code::OutOfRange
        );
        assert!(fits(&Value::Int(0), &Ty::fraction(), "dropout").is_ok());
        assert!(fits(&Value::Float(0.0), &Ty::pos_float(), "lr").is_err());
        let e = fits(&Value::Str("bolq".into()), &Ty::Choice(TASKS), "tasks").unwrap_err();
        assert_eq!(
            (e.code, e.help.as_str()),
            (Code::UnknownTask, "did you mean `boolq`?")
        );
        assert_eq!(
            from_kdl(&KdlValue::Integer(1 << 70)).unwrap_err().code,
            Code::OutOfRange
        );
    }
}
