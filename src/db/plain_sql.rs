//! The guard a plain backup's SQL passes on its way to psql.
//!
//! psql runs every backslash command it meets outside quotes, comments and COPY data, wherever the
//! text came from: `\! cmd` runs a shell as the user psql runs as (this machine's with
//! `--database-url`, the pod's otherwise), `\o FILE` writes files, `\set` changes what comes after.
//! A plain backup's manifest proves only that the file is the one it describes; anyone who can
//! write the file can write its manifest. So a plain backup is restored only as pg_dump writes
//! one: statements, COPY data ended by `\.`, and at most pg_dump's own `\restrict KEY` at its head
//! and `\unrestrict KEY` at its end (pg_dump 17.6, 16.10, 15.14 and later). Anything else a psql
//! command could be is refused before anything is touched.
//!
//! The text is read as psql's scanner reads it (PostgreSQL's src/fe_utils/psqlscan.l): quotes,
//! `E'…'` escapes, dollar quotes, nested comments, parentheses and the `BEGIN … END` of SQL-standard
//! function bodies (a `;` inside either does not end a statement), psql variables, and the line
//! after `COPY … FROM stdin;`. Where psql's reading depends on something this guard cannot know,
//! the text is refused rather than guessed: a backslash before the closing quote of an ordinary
//! string (its end depends on `standard_conforming_strings`), an `E'…'` string continued on
//! another line, a number run into a letter (psql 15 and 16 split `1abc` differently), a variable
//! whose value psql knows (`:NAME`), a NUL byte. The one thing a statement can change under psql's
//! feet, the client encoding, is reported ([`Summary::non_ascii_line`]): the restore wraps the
//! stream in its own random `\restrict` where psql has it, and otherwise takes only ASCII SQL.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// Why a file is not restored: where, and what pg_dump does not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based; 0 when the cause is the file's end.
    pub line: u64,
    pub why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.why)
        } else {
            write!(f, "line {}: {}", self.line, self.why)
        }
    }
}

/// What a file that passed holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub statements: u64,
    pub copies: u64,
    /// The dump carried pg_dump's own `\restrict` (dropped: the restore puts its own around it).
    pub restricted: bool,
    /// The first line whose SQL (not COPY data) has a byte outside ASCII: a statement may switch
    /// the client encoding, and psql reads such bytes by the encoding of the moment.
    pub non_ascii_line: Option<u64>,
}

/// The longest statement head kept to recognise `COPY … FROM stdin` (a table of many columns).
const STATEMENT_HEAD: usize = 64 * 1024;
/// The longest `$tag$` and psql command line considered.
const TAG_MAX: usize = 256;
const META_MAX: usize = 512;

/// The only COPY a restore takes: pg_dump's `COPY table (columns) FROM stdin` (before its `;`).
static COPY_FROM_STDIN: LazyLock<Regex> = LazyLock::new(|| {
    let ident = r#"(?:[a-z_][a-z0-9_]*|"(?:[^"]|"")+")"#;
    Regex::new(&format!(
        r"(?s-u)\ACOPY {ident}(?:\.{ident})? (?:\({ident}(?:, {ident})*\) )?FROM stdin\z"
    ))
    .expect("a valid regex")
});

/// pg_dump's own restrict lines, without their newline.
static RESTRICT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)\A\\(restrict|unrestrict) ([A-Za-z0-9]{1,128})\r?\z").expect("a valid regex")
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// Digits (and a decimal point).
    Digits,
    /// After `1e`: digits or a sign must follow.
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Sql,
    /// After `-` / `/`: a comment may start.
    Dash,
    Slash,
    LineComment,
    /// `/* … */`, nested; `pending` is a `/` or `*` that may open or close one.
    Block {
        depth: u32,
        pending: u8,
    },
    /// After `E`, `B`, `X`, `N` or `U` at a token's start: a quote may follow.
    Prefix(u8),
    /// After `U&`.
    UAmp,
    /// An identifier or keyword.
    Word,
    Number {
        param: bool,
        state: Num,
    },
    /// After `:` (a cast, an assignment or a psql variable).
    Colon,
    ColonVar {
        upper: bool,
    },
    /// After `$` at a token's start; then a dollar-quote tag.
    Dollar,
    DollarTag(Vec<u8>),
    /// Inside `$tag$ … $tag$`: how much of the closing delimiter has been seen.
    DollarBody {
        delimiter: Vec<u8>,
        matched: usize,
    },
    /// A quoted string: `escapes` for `E'…'`; `run` counts the backslashes just seen.
    Quote {
        escapes: bool,
        run: u32,
    },
    /// In `E'…'` after a backslash: the next byte is taken whatever it is.
    QuoteEscape,
    /// After a quote that may close the string (a second one continues it).
    QuoteEnd {
        escapes: bool,
    },
    /// `"…"` and `U&"…"`.
    Ident,
    IdentEnd,
    /// The rest of a `COPY … FROM stdin;` line.
    AfterCopy,
    /// COPY data: `start` at a line's start, `dot` how much of a `\.` line has been seen.
    Data {
        start: bool,
        seen: u8,
    },
    /// A psql command line at a line's start (pg_dump's `\restrict` ones), held to be judged.
    Meta(Vec<u8>),
    /// After the dump's `\unrestrict`.
    Ended,
}

/// The first token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum First {
    Word(Vec<u8>),
    Other,
}

#[derive(Debug, Clone, Default)]
struct Statement {
    /// Nothing but whitespace and `--` comments yet.
    empty: bool,
    first: Option<First>,
    head: Vec<u8>,
    overflow: bool,
}

impl Statement {
    fn new() -> Statement {
        Statement {
            empty: true,
            ..Default::default()
        }
    }
}

/// The guard: feed it the decompressed SQL in chunks of any size, then `finish`.
#[derive(Debug, Clone)]
pub struct Guard {
    mode: Mode,
    line: u64,
    at_line_start: bool,
    paren: u32,
    begin: u32,
    idents: [u8; 4],
    ident_count: u32,
    word: Vec<u8>,
    word_len: usize,
    statement: Statement,
    /// After an `E'…'` string closed: whether a newline has followed it since.
    after_escape_string: Option<bool>,
    restrict_key: Option<Vec<u8>>,
    summary: Summary,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn variable_char(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit()
}

fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// A psql command's name as a message shows it: short, escaped.
fn command_name(line: &[u8]) -> String {
    let name: Vec<u8> = line
        .iter()
        .skip(1)
        .take_while(|b| !space(**b))
        .take(16)
        .copied()
        .collect();
    format!("\\{}", String::from_utf8_lossy(&name).escape_debug())
}

impl Guard {
    pub fn new() -> Guard {
        Guard {
            mode: Mode::Sql,
            line: 1,
            at_line_start: true,
            paren: 0,
            begin: 0,
            idents: [0; 4],
            ident_count: 0,
            word: Vec::new(),
            word_len: 0,
            statement: Statement::new(),
            after_escape_string: None,
            restrict_key: None,
            summary: Summary::default(),
        }
    }

    fn refuse(&self, why: impl Into<String>) -> Refused {
        Refused {
            line: self.line,
            why: why.into(),
        }
    }

    /// Check `input`, the next bytes of the SQL; what psql should get of them is appended to `out`
    /// (all of it but pg_dump's own `\restrict` lines).
    pub fn feed(&mut self, input: &[u8], mut out: Option<&mut Vec<u8>>) -> Result<(), Refused> {
        let mut emit_from = 0;
        let mut i = 0;
        while i < input.len() {
            // COPY data in bulk: to the next newline.
            if let Mode::Data { start: false, .. } = self.mode {
                let rest = &input[i..];
                let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                if memchr::memchr(0, &rest[..end]).is_some() {
                    return Err(self.refuse("a NUL byte in COPY data"));
                }
                i += end;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            if b == 0 {
                return Err(self.refuse("a NUL byte"));
            }
            let was_meta = matches!(self.mode, Mode::Meta(_));
            self.step(b)?;
            match (&self.mode, was_meta) {
                // A command line begins: hold it back.
                (Mode::Meta(_), false) => {
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&input[emit_from..i]);
                    }
                    emit_from = input.len();
                }
                // pg_dump's own restrict line ended (and was taken): drop it with its newline.
                (mode, true) if !matches!(mode, Mode::Meta(_)) => emit_from = i + 1,
                _ => {}
            }
            if !self.statement.empty && !matches!(self.mode, Mode::Data { .. } | Mode::AfterCopy) {
                if self.statement.head.len() < STATEMENT_HEAD {
                    self.statement.head.push(b);
                } else {
                    self.statement.overflow = true;
                }
            }
            if b >= 0x80
                && self.summary.non_ascii_line.is_none()
                && !matches!(self.mode, Mode::Data { .. })
            {
                self.summary.non_ascii_line = Some(self.line);
            }
            if b == b'\n' {
                self.line += 1;
                self.at_line_start = true;
            } else {
                self.at_line_start = false;
            }
            i += 1;
        }
        if let Some(out) = out
            && emit_from < input.len()
            && !matches!(self.mode, Mode::Meta(_))
        {
            out.extend_from_slice(&input[emit_from..]);
        }
        Ok(())
    }

    /// The end of the file: it must end where pg_dump's files end, between statements.
    pub fn finish(mut self) -> Result<Summary, Refused> {
        // Whatever was pending resolves as if a newline followed (a comment, a word, a number).
        if let Mode::Meta(line) = &self.mode {
            let line = line.clone();
            self.judge_meta(&line)?;
        }
        let at_end = |why: &str| Refused {
            line: 0,
            why: format!("the file ends {why}: pg_dump's files end between statements"),
        };
        match &self.mode {
            Mode::Sql | Mode::LineComment | Mode::Ended => {}
            Mode::Dash
            | Mode::Slash
            | Mode::Prefix(_)
            | Mode::UAmp
            | Mode::Word
            | Mode::Number { .. }
            | Mode::Colon
            | Mode::ColonVar { .. }
            | Mode::Dollar
            | Mode::DollarTag(_)
            | Mode::QuoteEnd { .. }
            | Mode::IdentEnd => self.step(b'\n')?,
            Mode::Block { .. } => return Err(at_end("inside a /* comment */")),
            Mode::DollarBody { .. } => return Err(at_end("inside a $$-quoted body")),
            Mode::Quote { .. } | Mode::QuoteEscape => return Err(at_end("inside a quoted string")),
            Mode::Ident => return Err(at_end("inside a quoted identifier")),
            Mode::AfterCopy | Mode::Data { .. } => {
                return Err(at_end("inside COPY data (no closing \\. line)"));
            }
            Mode::Meta(_) => unreachable!("judged above"),
        }
        if !self.statement.empty || self.paren > 0 || self.begin > 0 {
            return Err(at_end("inside a statement (no closing `;`)"));
        }
        if self.restrict_key.is_some() && self.mode != Mode::Ended {
            return Err(Refused {
                line: 0,
                why: "the file opens with pg_dump's \\restrict but does not end with its \\unrestrict".into(),
            });
        }
        Ok(self.summary)
    }

    /// The statement has a token that is not whitespace or a `--` comment.
    fn token(&mut self, first: Option<First>) {
        self.statement.empty = false;
        if self.statement.first.is_none() {
            self.statement.first = Some(first.unwrap_or(First::Other));
        }
    }

    /// One byte; states that only look ahead hand the byte back to `Sql`.
    fn step(&mut self, b: u8) -> Result<(), Refused> {
        loop {
            if self.step_once(b)? {
                return Ok(());
            }
        }
    }

    /// Returns false when `b` must be looked at again in the new mode.
    fn step_once(&mut self, b: u8) -> Result<bool, Refused> {
        match std::mem::replace(&mut self.mode, Mode::Sql) {
            Mode::Sql => self.sql(b),
            Mode::Dash => {
                if b == b'-' {
                    self.mode = Mode::LineComment;
                    return Ok(true);
                }
                self.token(None);
                Ok(false)
            }
            Mode::Slash => {
                if b == b'*' {
                    // In psql's buffer, but not the statement's first token: `/* */ COPY …` is a COPY.
                    self.statement.empty = false;
                    self.mode = Mode::Block {
                        depth: 0,
                        pending: 0,
                    };
                    return Ok(true);
                }
                self.token(None);
                Ok(false)
            }
            Mode::LineComment => {
                if b == b'\n' || b == b'\r' {
                    return Ok(false);
                }
                self.mode = Mode::LineComment;
                Ok(true)
            }
            Mode::Block { depth, pending } => {
                self.mode = match (pending, b) {
                    (b'/', b'*') => Mode::Block {
                        depth: depth + 1,
                        pending: 0,
                    },
                    (b'*', b'/') if depth == 0 => Mode::Sql,
                    (b'*', b'/') => Mode::Block {
                        depth: depth - 1,
                        pending: 0,
                    },
                    (_, b'/' | b'*') => Mode::Block { depth, pending: b },
                    _ => Mode::Block { depth, pending: 0 },
                };
                Ok(true)
            }
            Mode::Prefix(p) => {
                let lower = p.to_ascii_lowercase();
                if b == b'\'' && lower != b'u' {
                    self.token(None);
                    self.mode = Mode::Quote {
                        escapes: lower == b'e',
                        run: 0,
                    };
                    return Ok(true);
                }
                if b == b'&' && lower == b'u' {
                    self.mode = Mode::UAmp;
                    return Ok(true);
                }
                self.start_word(p);
                Ok(false)
            }
            Mode::UAmp => {
                self.token(None);
                match b {
                    b'\'' => {
                        self.mode = Mode::Quote {
                            escapes: false,
                            run: 0,
                        }
                    }
                    b'"' => self.mode = Mode::Ident,
                    // `U&` alone: the U is a character of its own, the & an operator.
                    _ => return Ok(false),
                }
                Ok(true)
            }
            Mode::Word => {
                if ident_cont(b) {
                    self.push_word(b);
                    self.mode = Mode::Word;
                    return Ok(true);
                }
                self.end_word();
                Ok(false)
            }
            Mode::Number { param, state } => self.number(b, param, state),
            Mode::Colon => match b {
                b':' | b'=' => Ok(true),
                b'\'' | b'"' | b'{' => Err(self.refuse(
                    "a psql variable (`:'name'`, `:\"name\"` or `:{?name}`) outside quotes, which pg_dump does not write",
                )),
                _ if variable_char(b) => {
                    self.mode = Mode::ColonVar {
                        upper: b.is_ascii_uppercase(),
                    };
                    Ok(true)
                }
                _ => Ok(false),
            },
            Mode::ColonVar { upper } => {
                if variable_char(b) {
                    self.mode = Mode::ColonVar {
                        upper: upper || b.is_ascii_uppercase(),
                    };
                    return Ok(true);
                }
                if upper {
                    // psql's own variables (:VERSION, :DBNAME, …) have upper-case names; one
                    // that psql knows is replaced by its value, which this guard cannot read.
                    return Err(self.refuse(
                        "a psql variable (`:NAME`) outside quotes, which psql would replace by its value",
                    ));
                }
                Ok(false)
            }
            Mode::Dollar => {
                if b.is_ascii_digit() {
                    self.mode = Mode::Number {
                        param: true,
                        state: Num::Digits,
                    };
                    return Ok(true);
                }
                if b == b'$' {
                    self.mode = Mode::DollarBody {
                        delimiter: b"$$".to_vec(),
                        matched: 0,
                    };
                    return Ok(true);
                }
                if ident_start(b) {
                    self.mode = Mode::DollarTag(vec![b]);
                    return Ok(true);
                }
                // A `$` of its own.
                Ok(false)
            }
            Mode::DollarTag(mut tag) => {
                if b == b'$' {
                    let mut delimiter = Vec::with_capacity(tag.len() + 2);
                    delimiter.push(b'$');
                    delimiter.extend_from_slice(&tag);
                    delimiter.push(b'$');
                    self.mode = Mode::DollarBody {
                        delimiter,
                        matched: 0,
                    };
                    return Ok(true);
                }
                if ident_cont(b) && b != b'$' {
                    if tag.len() >= TAG_MAX {
                        return Err(self.refuse("a $tag$ longer than 256 bytes"));
                    }
                    tag.push(b);
                    self.mode = Mode::DollarTag(tag);
                    return Ok(true);
                }
                // No closing `$`: psql takes the `$` alone and reads the tag again as the start
                // of a token (`$E'…'` is a `$` and an E'' string).
                for t in tag {
                    self.step(t)?;
                }
                Ok(false)
            }
            Mode::DollarBody {
                delimiter,
                mut matched,
            } => {
                if b == delimiter[matched] {
                    matched += 1;
                } else if b == b'$' {
                    matched = 1;
                } else {
                    matched = 0;
                }
                if matched < delimiter.len() {
                    self.mode = Mode::DollarBody { delimiter, matched };
                }
                Ok(true)
            }
            Mode::Quote { escapes, run } => {
                if escapes && b == b'\\' {
                    self.mode = Mode::QuoteEscape;
                    return Ok(true);
                }
                if b == b'\'' {
                    if !escapes && run % 2 == 1 {
                        return Err(self.refuse(
                            "a backslash before a string's closing quote: where it ends depends on standard_conforming_strings, which psql and this check may not share",
                        ));
                    }
                    self.mode = Mode::QuoteEnd { escapes };
                    return Ok(true);
                }
                self.mode = Mode::Quote {
                    escapes,
                    run: if b == b'\\' { run + 1 } else { 0 },
                };
                Ok(true)
            }
            Mode::QuoteEscape => {
                self.mode = Mode::Quote {
                    escapes: true,
                    run: 0,
                };
                Ok(true)
            }
            Mode::QuoteEnd { escapes } => {
                if b == b'\'' {
                    self.mode = Mode::Quote { escapes, run: 0 };
                    return Ok(true);
                }
                if escapes {
                    self.after_escape_string = Some(false);
                }
                Ok(false)
            }
            Mode::Ident => {
                self.mode = if b == b'"' {
                    Mode::IdentEnd
                } else {
                    Mode::Ident
                };
                Ok(true)
            }
            Mode::IdentEnd => {
                if b == b'"' {
                    self.mode = Mode::Ident;
                    return Ok(true);
                }
                Ok(false)
            }
            Mode::AfterCopy => match b {
                b'\n' => {
                    self.mode = Mode::Data {
                        start: true,
                        seen: 0,
                    };
                    Ok(true)
                }
                b' ' | b'\t' | b'\r' | 0x0c => {
                    self.mode = Mode::AfterCopy;
                    Ok(true)
                }
                _ => Err(self.refuse(
                    "text after `COPY … FROM stdin;` on its line, which psql would read after the data",
                )),
            },
            Mode::Data { start, seen } => {
                // psql ends COPY data at a line that is exactly `\.` (LF or CRLF).
                self.mode = match (start, seen, b) {
                    (true, 2 | 3, b'\n') => {
                        self.statement = Statement::new();
                        Mode::Sql
                    }
                    (_, _, b'\n') => Mode::Data {
                        start: true,
                        seen: 0,
                    },
                    (true, 0, b'\\') => Mode::Data {
                        start: true,
                        seen: 1,
                    },
                    (true, 1, b'.') => Mode::Data {
                        start: true,
                        seen: 2,
                    },
                    (true, 2, b'\r') => Mode::Data {
                        start: true,
                        seen: 3,
                    },
                    _ => Mode::Data {
                        start: false,
                        seen: 0,
                    },
                };
                Ok(true)
            }
            Mode::Meta(mut line) => {
                if b == b'\n' {
                    self.judge_meta(&line)?;
                    return Ok(true);
                }
                if line.len() >= META_MAX {
                    return Err(self.refuse(format!(
                        "a psql command `{}` outside COPY data, which pg_dump does not write",
                        command_name(&line)
                    )));
                }
                line.push(b);
                self.mode = Mode::Meta(line);
                Ok(true)
            }
            Mode::Ended => {
                if space(b) {
                    self.mode = Mode::Ended;
                    return Ok(true);
                }
                Err(self.refuse(
                    "text after the dump's closing \\unrestrict, where pg_dump writes nothing",
                ))
            }
        }
    }

    /// `INITIAL`: what a byte starts.
    fn sql(&mut self, b: u8) -> Result<bool, Refused> {
        if let Some(newline) = self.after_escape_string {
            if space(b) {
                self.after_escape_string = Some(newline || b == b'\n' || b == b'\r');
            } else if b == b'\'' && newline {
                return Err(self.refuse(
                    "an E'…' string continued on another line, which psql and the server read differently",
                ));
            } else if b != b'-' {
                self.after_escape_string = None;
            }
        }
        match b {
            _ if space(b) => {}
            b'-' => self.mode = Mode::Dash,
            b'/' => self.mode = Mode::Slash,
            b'\\' => {
                if self.at_line_start && self.statement.empty {
                    self.mode = Mode::Meta(vec![b]);
                    return Ok(true);
                }
                return Err(self.refuse(
                    "a backslash outside quotes and COPY data: psql would run it as a command, and pg_dump does not write one there",
                ));
            }
            b'\'' => {
                self.token(None);
                self.mode = Mode::Quote {
                    escapes: false,
                    run: 0,
                };
            }
            b'"' => {
                self.token(None);
                self.mode = Mode::Ident;
            }
            b'$' => {
                self.token(None);
                self.mode = Mode::Dollar;
            }
            b':' => {
                self.token(None);
                self.mode = Mode::Colon;
            }
            b'(' => {
                self.token(None);
                self.paren += 1;
            }
            b')' => {
                self.token(None);
                self.paren = self.paren.saturating_sub(1);
            }
            b';' => {
                self.token(None);
                if self.paren == 0 && self.begin == 0 {
                    self.end_statement()?;
                }
            }
            b'e' | b'E' | b'b' | b'B' | b'x' | b'X' | b'n' | b'N' | b'u' | b'U' => {
                self.mode = Mode::Prefix(b);
            }
            _ if ident_start(b) => {
                self.start_word(b);
                self.mode = Mode::Word;
            }
            _ if b.is_ascii_digit() => {
                self.token(None);
                self.mode = Mode::Number {
                    param: false,
                    state: Num::Digits,
                };
            }
            _ => self.token(None),
        }
        Ok(true)
    }

    fn start_word(&mut self, b: u8) {
        // In psql's buffer from its first byte (the statement's first token is set at its end).
        self.statement.empty = false;
        self.word.clear();
        self.word_len = 0;
        self.push_word(b);
        self.mode = Mode::Word;
    }

    fn push_word(&mut self, b: u8) {
        if self.word.len() < 16 {
            self.word.push(b.to_ascii_lowercase());
        }
        self.word_len += 1;
    }

    /// An identifier ended: psql's heuristic for `CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN
    /// ATOMIC … END`, whose inner `;` do not end the statement.
    fn end_word(&mut self) {
        let word = if self.word_len <= 16 {
            self.word.clone()
        } else {
            Vec::new()
        };
        self.token(Some(First::Word(word.clone())));
        if self.ident_count == 0 {
            self.idents = [0; 4];
        }
        if matches!(
            word.as_slice(),
            b"create" | b"function" | b"procedure" | b"or" | b"replace"
        ) && (self.ident_count as usize) < self.idents.len()
        {
            self.idents[self.ident_count as usize] = word[0];
        }
        self.ident_count = self.ident_count.saturating_add(1);
        let i = self.idents;
        if i[0] == b'c'
            && (i[1] == b'f'
                || i[1] == b'p'
                || (i[1] == b'o' && i[2] == b'r' && (i[3] == b'f' || i[3] == b'p')))
            && self.paren == 0
        {
            match word.as_slice() {
                b"begin" => self.begin += 1,
                b"case" if self.begin >= 1 => self.begin += 1,
                b"end" if self.begin > 0 => self.begin -= 1,
                _ => {}
            }
        }
    }

    fn number(&mut self, b: u8, param: bool, state: Num) -> Result<bool, Refused> {
        let junk = || "a number run into a letter (`1abc`, `1e'…'`, `$1x`), which psql 15 and 16 read differently";
        let next = match state {
            Num::Digits if b.is_ascii_digit() => Some(Num::Digits),
            Num::Digits if b == b'.' && !param => Some(Num::Digits),
            Num::Digits if (b == b'e' || b == b'E') && !param => Some(Num::Exp),
            Num::Exp if b.is_ascii_digit() => Some(Num::ExpDigits),
            Num::Exp if b == b'+' || b == b'-' => Some(Num::ExpSign),
            Num::Exp | Num::ExpSign if !b.is_ascii_digit() => return Err(self.refuse(junk())),
            Num::ExpSign | Num::ExpDigits if b.is_ascii_digit() => Some(Num::ExpDigits),
            _ => None,
        };
        if let Some(state) = next {
            self.mode = Mode::Number { param, state };
            return Ok(true);
        }
        if ident_start(b) {
            return Err(self.refuse(junk()));
        }
        Ok(false)
    }

    /// A `;` that psql sends the statement at.
    fn end_statement(&mut self) -> Result<(), Refused> {
        let statement = std::mem::replace(&mut self.statement, Statement::new());
        self.ident_count = 0;
        self.summary.statements += 1;
        let Some(First::Word(word)) = &statement.first else {
            return Ok(());
        };
        match word.as_slice() {
            b"copy" => {
                // The head holds the statement up to (not with) this `;`.
                if statement.overflow || !COPY_FROM_STDIN.is_match(&statement.head) {
                    return Err(self.refuse(
                        "a COPY statement pg_dump does not write: only `COPY table (columns) FROM stdin;` is restored",
                    ));
                }
                self.summary.copies += 1;
                self.mode = Mode::AfterCopy;
            }
            b"begin" | b"start" | b"commit" | b"end" | b"rollback" | b"abort" | b"savepoint"
            | b"release" | b"prepare" => {
                return Err(self.refuse(format!(
                    "a transaction statement (`{}`), which pg_dump does not write: the restore is one transaction of its own",
                    String::from_utf8_lossy(word).to_uppercase()
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// A psql command line at a line's start: only pg_dump's own `\restrict` at the head and
    /// `\unrestrict` with the same key at the end.
    fn judge_meta(&mut self, line: &[u8]) -> Result<(), Refused> {
        let taken = RESTRICT_LINE.captures(line).and_then(|c| {
            let key = c.get(2)?.as_bytes().to_vec();
            match (c.get(1)?.as_bytes(), &self.restrict_key) {
                (b"restrict", None) if self.summary.statements == 0 => {
                    self.restrict_key = Some(key);
                    self.summary.restricted = true;
                    Some(Mode::Sql)
                }
                (b"unrestrict", Some(k)) if *k == key => Some(Mode::Ended),
                _ => None,
            }
        });
        match taken {
            Some(mode) => {
                self.mode = mode;
                Ok(())
            }
            None => Err(self.refuse(format!(
                "a psql command `{}` outside COPY data, which pg_dump does not write",
                command_name(line)
            ))),
        }
    }
}

/// The guard behind a gzip decoder: a plain backup's bytes as they are in the file.
pub struct GzGuard {
    decoder: flate2::write::MultiGzDecoder<Vec<u8>>,
    guard: Guard,
}

impl Default for GzGuard {
    fn default() -> Self {
        GzGuard::new()
    }
}

/// Compressed bytes handed to the decoder at a time: what they inflate to is held in memory
/// (gzip's ratio is at most about 1:1000, so a few MiB).
const INFLATE_STEP: usize = 4096;

impl GzGuard {
    pub fn new() -> GzGuard {
        GzGuard {
            decoder: flate2::write::MultiGzDecoder::new(Vec::new()),
            guard: Guard::new(),
        }
    }

    fn damaged(e: std::io::Error) -> Refused {
        Refused {
            line: 0,
            why: format!("it is not gzip-compressed SQL as pg_dump writes it ({e})"),
        }
    }

    /// The next bytes of the file; the SQL psql should get of them is appended to `out`.
    pub fn push(
        &mut self,
        compressed: &[u8],
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<(), Refused> {
        use std::io::Write;
        for piece in compressed.chunks(INFLATE_STEP) {
            self.decoder.write_all(piece).map_err(Self::damaged)?;
            let sql = std::mem::take(self.decoder.get_mut());
            self.guard.feed(&sql, out.as_deref_mut())?;
            // Keep the buffer's allocation for the next piece.
            let mut sql = sql;
            sql.clear();
            *self.decoder.get_mut() = sql;
        }
        Ok(())
    }

    /// The file's end: the gzip stream and the SQL must both be complete.
    pub fn finish(mut self, out: Option<&mut Vec<u8>>) -> Result<Summary, Refused> {
        self.decoder.try_finish().map_err(Self::damaged)?;
        let sql = std::mem::take(self.decoder.get_mut());
        let mut guard = self.guard;
        guard.feed(&sql, out)?;
        guard.finish()
    }
}

/// Check a whole SQL text (tests, the pre-pass): its summary, or why it is refused.
pub fn check(sql: &[u8]) -> Result<Summary, Refused> {
    let mut g = Guard::new();
    g.feed(sql, None)?;
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(sql: &str) -> Summary {
        check(sql.as_bytes()).unwrap_or_else(|e| panic!("{sql:?} refused: {e}"))
    }

    fn refused(sql: &str) -> Refused {
        match check(sql.as_bytes()) {
            Ok(s) => panic!("{sql:?} passed: {s:?}"),
            Err(e) => e,
        }
    }

    /// What `feed` passes on, fed in chunks of `n` bytes.
    fn filtered(sql: &str, n: usize) -> Result<String, Refused> {
        let mut g = Guard::new();
        let mut out = Vec::new();
        for chunk in sql.as_bytes().chunks(n) {
            g.feed(chunk, Some(&mut out))?;
        }
        g.finish()?;
        Ok(String::from_utf8(out).unwrap())
    }

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abcXYZ09\n\n-- Dumped from database version 16.10\n\nSET statement_timeout = 0;\nSET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n\nCREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS $_$BEGIN RETURN 'a;\\b' || $x$; END$_$;\n\nCREATE FUNCTION public.g() RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN true THEN 2 ELSE 3 END;\nEND;\n\nCREATE TABLE public.\"T\" (\n    id integer DEFAULT 1 NOT NULL,\n    note text DEFAULT E'it\\'s'::text CHECK ((note ~ '^\\d+$'::text)),\n    arr integer[]\n);\n\nCOMMENT ON TABLE public.\"T\" IS 'it''s /* not a comment';\n\nCOPY public.\"T\" (id, note, arr) FROM stdin;\n1\t\\N\t{1,2}\n2\tback\\\\slash \\! not a command\t\\N\n\\.\n\nSELECT pg_catalog.setval('public.s', 1.5e+3, true);\nSELECT (arr)[1:2]::text FROM public.\"T\" /* a /* nested */ comment */;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abcXYZ09\n\n";

    #[test]
    fn a_dump_as_pg_dump_writes_it_passes_without_its_restrict_lines() {
        let s = passes(DUMP);
        assert_eq!(s.copies, 1);
        assert!(s.restricted);
        assert_eq!(s.non_ascii_line, None);
        assert_eq!(s.statements, 10, "{s:?}");
        for n in [1, 2, 3, 7, 64, 100_000] {
            let out = filtered(DUMP, n).unwrap();
            assert!(!out.contains("restrict"), "chunks of {n}: {out}");
            assert_eq!(
                out,
                DUMP.replace("\\restrict abcXYZ09\n", "")
                    .replace("\\unrestrict abcXYZ09\n", ""),
                "chunks of {n}"
            );
        }
        // A dump of an older pg_dump has no restrict lines.
        let older = DUMP
            .replace("\\restrict abcXYZ09\n", "")
            .replace("\\unrestrict abcXYZ09\n", "");
        assert!(!passes(&older).restricted);
        assert_eq!(filtered(&older, 5).unwrap(), older);
    }

    #[test]
    fn a_psql_command_outside_copy_data_is_refused_wherever_it_hides() {
        let e = refused(&format!("\\! id > /tmp/pwned\n{DUMP}"));
        assert_eq!(e.line, 1);
        assert!(e.why.contains("`\\!`"), "{e}");
        for (sql, line) in [
            ("SELECT 1;\n\\! id\n", 2),
            ("SELECT 1; \\! id\n", 1),
            ("SELECT 1 \\gexec\n", 1),
            ("SELECT 1\\;SELECT 2;\n", 1),
            // After a COPY's data, or on its line.
            ("COPY public.t (a) FROM stdin;\n1\n\\.\n\\o /tmp/x\n", 4),
            ("COPY public.t (a) FROM stdin; \\! id\n1\n\\.\n", 1),
            // Strings and comments that end where psql thinks they do.
            ("SELECT 'a''b'; \\! id\n", 1),
            ("SELECT E'a\\\\'; \\! id\n", 1),
            ("SELECT $a$ $b$ $a$; \\! id\n", 1),
            ("SELECT /* /* */ */ 1; \\! id\n", 1),
            ("SELECT \"a\"\"b\"; \\! id\n", 1),
            ("-- a comment\r\\! id\n", 1),
            // A failed dollar quote: `$E` is a `$` and an E'' string.
            ("SELECT $E'\\'' \\! id ';\n", 1),
            // The dump's own restrict: only at its head, only with its key at its end.
            ("SELECT 1;\n\\restrict abc\n", 2),
            ("\\restrict abc\nSELECT 1;\n\\unrestrict abd\n", 3),
            ("\\restrict abc\n\\restrict abc\n", 2),
            ("\\restrict abc \\! id\n", 1),
            (
                "\\restrict abc\nSELECT 1;\n\\unrestrict abc\nSELECT 2;\n",
                4,
            ),
            ("\\unrestrict abc\n", 1),
        ] {
            let e = refused(sql);
            assert_eq!(e.line, line, "{sql:?}: {e}");
        }
    }

    #[test]
    fn copy_data_is_data_and_only_pg_dumps_copy_starts_it() {
        // Backslashes in data are COPY's escapes, not commands; `\.` alone ends it (LF or CRLF).
        passes("COPY public.t (a) FROM stdin;\n\\! x\n\\.x\n \\.\n\\.\r\nSELECT 1;\n");
        for sql in [
            "COPY public.t FROM '/etc/passwd';\n",
            "copy public.t (a) from stdin;\n\\! id\n\\.\n",
            "COPY public.t (a) FROM stdin WITH (FORMAT csv);\n",
            "/* x */ COPY public.t (a) TO stdout;\n",
            "COPY public.t (a) FROM stdin -- x\n;\n",
        ] {
            let e = refused(sql);
            assert!(e.why.contains("COPY"), "{sql:?}: {e}");
        }
        // Data that never ends.
        let e = refused("COPY public.t (a) FROM stdin;\n1\n");
        assert_eq!(e.line, 0);
        assert!(e.why.contains("COPY data"), "{e}");
    }

    #[test]
    fn what_psql_and_this_guard_could_read_differently_is_refused() {
        for (sql, says) in [
            // standard_conforming_strings off: the quote is escaped and the string goes on.
            ("SELECT 'a\\' ' \\! id ';\n", "standard_conforming_strings"),
            ("SELECT 'a\\\\\\''';\n", "standard_conforming_strings"),
            ("SELECT E'a'\n'\\' \\! x';\n", "continued on another line"),
            ("SELECT 1abc;\n", "number run into a letter"),
            ("SELECT 1e'x';\n", "number run into a letter"),
            ("SELECT 1_000;\n", "number run into a letter"),
            ("SELECT $1x;\n", "number run into a letter"),
            ("SELECT :VERSION;\n", "psql variable"),
            ("SELECT :'DBNAME';\n", "psql variable"),
            ("SELECT 1;\0\n", "NUL"),
            ("COPY public.t (a) FROM stdin;\na\0b\n\\.\n", "NUL"),
            ("BEGIN;\n", "transaction"),
            ("commit;\n", "transaction"),
            ("SELECT 1", "no closing `;`"),
            ("SELECT 'a;\n", "quoted string"),
            ("SELECT $$ a;\n", "$$-quoted"),
            ("/* a\n", "comment"),
        ] {
            let e = refused(sql);
            assert!(e.why.contains(says), "{sql:?}: {e}");
        }
        // The same strings without the ambiguity pass.
        passes("SELECT 'a\\\\' , E'a\\'b', '^\\d+$', 1e5, 1.5, $1, (a)[1:n], x::text;\n");
    }

    #[test]
    fn begin_atomic_bodies_hold_their_semicolons_as_psql_does() {
        // psql sends the function as one statement: its inner `COPY … FROM stdin;` is no COPY,
        // and the lines after it are SQL, where a backslash is a command.
        let e = refused(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\nCOPY public.t (a) FROM stdin;\n\\! id\nEND;\n",
        );
        assert_eq!(e.line, 3);
        // Not a function: BEGIN is not counted (and a transaction statement is refused).
        let e = refused("BEGIN;\n");
        assert!(e.why.contains("transaction"));
        let s = passes("CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC SELECT 1; END;\nSELECT 2;\n");
        assert_eq!(s.statements, 2);
    }

    #[test]
    fn non_ascii_sql_is_reported_and_non_ascii_data_is_not() {
        let s = passes("SELECT 1;\nCOMMENT ON TABLE t IS 'café';\n");
        assert_eq!(s.non_ascii_line, Some(2));
        let s = passes("COPY public.t (a) FROM stdin;\ncafé\n\\.\n");
        assert_eq!(s.non_ascii_line, None);
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn the_gzip_file_is_checked_whole_every_member_and_its_end() {
        let file = gz(DUMP.as_bytes());
        let mut g = GzGuard::new();
        let mut out = Vec::new();
        for chunk in file.chunks(1000) {
            g.push(chunk, Some(&mut out)).unwrap();
        }
        assert_eq!(g.finish(Some(&mut out)).unwrap().copies, 1);
        assert!(out.starts_with(b"--\n-- PostgreSQL database dump"));
        // A second member after pg_dump's (gzip -dc would read it too).
        let two = [gz(b"SELECT 1;\n"), gz(b"\\! id\n")].concat();
        let mut g = GzGuard::new();
        let e = g.push(&two, None).and_then(|()| g.finish(None).map(|_| ()));
        assert_eq!(e.unwrap_err().line, 2);
        // Cut short, or with bytes after the stream.
        let mut g = GzGuard::new();
        g.push(&file[..file.len() / 2], None).unwrap();
        let e = g.finish(None).unwrap_err();
        assert!(e.why.contains("not gzip-compressed SQL"), "{e}");
        let mut g = GzGuard::new();
        let e = g.push(&[&file[..], b"junk after the stream"].concat(), None);
        let e = e.and_then(|()| g.finish(None).map(|_| ())).unwrap_err();
        assert!(e.why.contains("not gzip-compressed SQL"), "{e}");
    }
}
