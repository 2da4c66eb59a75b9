//! A tiny GraphQL reader: enough of the query language for the `Get` and `Aggregate` shapes adapters send
//! (selection sets, arguments, and input values). Anything else is a syntax error, which the fake answers as a
//! GraphQL error, never with a guess.

use serde_json::{Map, Number, Value};

/// One field of a selection set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// Its name.
    pub name: String,
    /// Its arguments in order; enum values come as [`Value::String`] (the fake needs no distinction).
    pub args: Vec<(String, Value)>,
    /// Its sub-selection, empty for a leaf.
    pub selection: Vec<Field>,
}

/// Parses a query document of one anonymous (or named) query operation into its top-level selection.
pub(crate) fn parse(query: &str) -> Result<Vec<Field>, String> {
    let mut p = Parser { s: query.as_bytes(), i: 0 };
    p.skip();
    if p.peek_name().as_deref() == Some("query") {
        p.name()?;
        p.skip();
        if p.peek() != Some(b'{') {
            p.name()?;
        }
    }
    let fields = p.selection()?;
    p.skip();
    if p.i != p.s.len() {
        return Err(format!("Syntax Error: unexpected text at offset {}", p.i));
    }
    Ok(fields)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.i += 1,
                b'#' => {
                    while self.s.get(self.i).is_some_and(|c| *c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("Syntax Error: expected {:?} at offset {}", c as char, self.i))
        }
    }

    fn peek_name(&self) -> Option<String> {
        let start = self.i;
        let mut j = start;
        while self.s.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            j += 1;
        }
        (j > start && !self.s[start].is_ascii_digit()).then(|| String::from_utf8_lossy(&self.s[start..j]).into_owned())
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip();
        let n = self.peek_name().ok_or_else(|| format!("Syntax Error: expected a name at offset {}", self.i))?;
        self.i += n.len();
        Ok(n)
    }

    fn selection(&mut self) -> Result<Vec<Field>, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        loop {
            self.skip();
            if self.peek() == Some(b'}') {
                self.i += 1;
                break;
            }
            let name = self.name()?;
            self.skip();
            let mut args = Vec::new();
            if self.peek() == Some(b'(') {
                self.i += 1;
                loop {
                    self.skip();
                    if self.peek() == Some(b')') {
                        self.i += 1;
                        break;
                    }
                    let arg = self.name()?;
                    self.expect(b':')?;
                    args.push((arg, self.value()?));
                }
                self.skip();
            }
            let selection = if self.peek() == Some(b'{') { self.selection()? } else { Vec::new() };
            fields.push(Field { name, args, selection });
        }
        if fields.is_empty() {
            return Err("Syntax Error: an empty selection set".to_owned());
        }
        Ok(fields)
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut m = Map::new();
                loop {
                    self.skip();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Value::Object(m));
                    }
                    let k = self.name()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    if m.insert(k.clone(), v).is_some() {
                        return Err(format!("There can be only one input field named \"{k}\"."));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value()?);
                }
            }
            Some(b'"') => self.string(),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => {
                let n = self.name()?;
                Ok(match n.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => Value::String(n),
                })
            }
            None => Err("Syntax Error: unexpected end of the query".to_owned()),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        let bad = || format!("Syntax Error: invalid number {text:?}");
        if float {
            let x: f64 = text.parse().map_err(|_| bad())?;
            Number::from_f64(x).map(Value::Number).ok_or_else(bad)
        } else {
            let n: i64 = text.parse().map_err(|_| bad())?;
            Ok(Value::Number(n.into()))
        }
    }

    fn string(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek().ok_or("Syntax Error: unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\n' | b'\r' => return Err("Syntax Error: unterminated string".to_owned()),
                b'\\' => {
                    let e = self.peek().ok_or("Syntax Error: unterminated string")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) {
                                // A surrogate pair, as JSON writes characters beyond the BMP.
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err("Syntax Error: a lone surrogate".to_owned());
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            let ch = char::from_u32(code).ok_or("Syntax Error: invalid unicode escape")?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => return Err(format!("Syntax Error: invalid escape \\{}", other as char)),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map(Value::String).map_err(|e| format!("Syntax Error: {e}"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).ok_or("Syntax Error: short unicode escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(digits).map_err(|e| e.to_string())?, 16).map_err(|e| format!("Syntax Error: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_adapter_shapes() {
        let q = r#"{ Get { Cs_x(nearVector: {vector: [1.0, -2, 3e-2]}, where: {operator: And, operands: [{path: ["key"], operator: Equal, valueText: "a\"b\u00e9"}]}, limit: 5) { key _additional { id distance } } } }"#;
        let f = parse(q).unwrap();
        assert_eq!(f[0].name, "Get");
        let c = &f[0].selection[0];
        assert_eq!(c.name, "Cs_x");
        assert_eq!(c.args[0].1, json!({"vector": [1.0, -2, 0.03]}));
        assert_eq!(c.args[1].1["operands"][0]["valueText"], json!("a\"bé"));
        assert_eq!(c.args[2], ("limit".to_owned(), json!(5)));
        assert_eq!(c.selection[1].selection.len(), 2);
        assert!(parse("{ Get { X(limit: ) { a } } }").is_err());
        assert!(parse("{ Get { X { a } }").is_err());
        assert!(parse("mutation { x }").is_err());
    }
}
