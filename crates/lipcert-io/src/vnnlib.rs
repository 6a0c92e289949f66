//! VNN-LIB properties: the SMT-LIB subset used by VNN-COMP 2021-2024.
//!
//! A property declares inputs `X_0 .. X_{n-1}` and outputs `Y_0 .. Y_{m-1}` (all `Real`) and
//! asserts formulas over them. The conjunction of all asserts describes the **unsafe** set: an
//! `(x, y)` that satisfies it, with `y` the network's output at `x`, is a counterexample.
//!
//! [`Property::parse`] normalizes the whole conjunction to a disjunction of [`Case`]s (disjunctive
//! normal form, distributing `and` over `or`). Each case is an input box and a conjunction of
//! output atoms `c . y <= d` (the unsafe side). The distinct output atoms are kept once, in the
//! order in which they first appear in the file, in [`Property::atoms`]; cases refer to them by
//! index.
//!
//! Supported:
//! - commands `declare-const` / `declare-fun` of `X_i` and `Y_j` with sort `Real`, and `assert`;
//!   `set-logic`, `set-info`, `set-option`, `check-sat`, `get-model` and `exit` are ignored;
//! - formulas `and`, `or`, `true`, `false` and the atoms `<=`, `>=`, `<`, `>` (two arguments);
//!   `=` only as a bound on one input;
//! - terms: numeric literals (`3`, `-0.5`, `.5`, `5.`, `1e-05`), variables, `(+ t ...)`,
//!   `(- t)`, `(- t u ...)` and `(* t ...)` with at most one non-constant factor;
//! - `;` comments, any whitespace, CRLF line ends.
//!
//! Semantics and rounding:
//! - A strict inequality is read as its closure (`<` as `<=`). The closure is a superset of the
//!   unsafe set, so a proof that no counterexample exists (unsat) stays sound. A counterexample
//!   found on the boundary must be re-checked against the network and the strict comparison
//!   ([`Property::case_holds`] tests the closure).
//! - An atom over inputs only must be a bound on one input (`X_i <= c`, `c <= X_i`,
//!   `(* 2 X_i) >= c`, ...). Bounds are computed from the f64 values of the coefficient and
//!   constant with directed rounding, so the box never shrinks. Numeric literals are rounded to
//!   the nearest f64, as every VNN-COMP tool does, and constant arithmetic inside terms rounds
//!   to nearest (in the benchmark files every coefficient is 1 and every constant one literal).
//! - An atom over outputs only is any linear inequality, normalized to `c . y <= d`.
//! - An atom without variables is evaluated exactly (strictness included).
//! - Within a case, several bounds on one input are intersected. A case whose box is empty, or
//!   which contains a false constant atom, can never be satisfied and is dropped. It is an error
//!   if no case remains, or if a remaining case leaves an input without a lower or upper bound.
//!
//! Refused with an error: linear constraints over several inputs, atoms that mix inputs and
//! outputs, `=` over outputs, `not`, `=>`, `ite`, `/` and other SMT-LIB functions, nonlinear
//! products, formulas that expand to more than [`MAX_CASES`] cases, gzip-compressed files.
//! Every error is one line and carries the line number where one applies.

use lipcert_core::rounding::{next_down, next_up};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The most cases the disjunctive normal form may have.
pub const MAX_CASES: usize = 100_000;
/// The deepest nesting of parentheses accepted (real files nest 4 deep).
const MAX_DEPTH: usize = 200;
/// The most (case, literal) pairs the normal form may hold while it is built.
const MAX_LITERALS: usize = 1 << 22;
/// The most stored f64 values for the case boxes (cases x inputs) and the dense atoms.
const MAX_DENSE: usize = 1 << 22;

/// One output constraint `c . y <= d`, the unsafe side of the comparison written in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputAtom {
    /// Dense coefficients, one per output.
    pub c: Vec<f64>,
    pub d: f64,
    /// Line of the atom's first occurrence in the file (1-based).
    pub line: usize,
    /// The atom as written at its first occurrence, e.g. `(>= Y_0 Y_8)`, with whitespace and
    /// comments normalized.
    pub text: String,
}

impl OutputAtom {
    /// `c . y`, summed in output order.
    pub fn value(&self, y: &[f64]) -> f64 {
        self.c.iter().zip(y).map(|(c, y)| c * y).sum()
    }

    /// Whether `y` satisfies the atom (lies on its unsafe side): `c . y <= d`.
    pub fn holds(&self, y: &[f64]) -> bool {
        self.value(y) <= self.d
    }
}

/// One disjunct of the normalized property: an input box and a conjunction of output atoms.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    /// Indices into [`Property::atoms`], ascending and distinct; all must hold.
    pub atoms: Vec<usize>,
}

/// A VNN-LIB property in disjunctive normal form. See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub num_inputs: usize,
    pub num_outputs: usize,
    /// The distinct output atoms in order of first appearance in the file. An atom that occurs
    /// only in dropped (empty) cases is still listed; no case refers to it.
    pub atoms: Vec<OutputAtom>,
    /// The unsafe set is the union of the cases. Never empty.
    pub cases: Vec<Case>,
}

/// A VNN-LIB reading error. Its `Display` is one line: `<file>:<line>: message`, or
/// `line <line>: message` when no file is known, without the line part when none applies.
#[derive(Debug, thiserror::Error)]
pub enum VnnlibError {
    /// The file could not be read.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// Malformed text: parentheses, tokens, arity, unknown commands, functions or symbols.
    #[error("{}", located(file.as_deref(), *line, message))]
    Syntax { file: Option<PathBuf>, line: Option<usize>, message: String },
    /// Well-formed VNN-LIB (or SMT-LIB) outside the subset that lipcert handles.
    #[error("{}", located(file.as_deref(), *line, message))]
    Unsupported { file: Option<PathBuf>, line: Option<usize>, message: String },
    /// Well-formed but meaningless: bad declarations, missing bounds, an empty property.
    #[error("{}", located(file.as_deref(), *line, message))]
    Invalid { file: Option<PathBuf>, line: Option<usize>, message: String },
}

fn located(file: Option<&Path>, line: Option<usize>, message: &str) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{}:{l}: {message}", f.display()),
        (Some(f), None) => format!("{}: {message}", f.display()),
        (None, Some(l)) => format!("line {l}: {message}"),
        (None, None) => message.to_string(),
    }
}

impl VnnlibError {
    /// The 1-based line the error refers to, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            VnnlibError::Io { .. } => None,
            VnnlibError::Syntax { line, .. }
            | VnnlibError::Unsupported { line, .. }
            | VnnlibError::Invalid { line, .. } => *line,
        }
    }

    fn with_file(mut self, path: &Path) -> Self {
        match &mut self {
            VnnlibError::Io { .. } => {}
            VnnlibError::Syntax { file, .. }
            | VnnlibError::Unsupported { file, .. }
            | VnnlibError::Invalid { file, .. } => *file = Some(path.to_path_buf()),
        }
        self
    }
}

fn syntax(line: usize, message: impl Into<String>) -> VnnlibError {
    VnnlibError::Syntax { file: None, line: Some(line), message: message.into() }
}

fn unsupported(line: usize, message: impl Into<String>) -> VnnlibError {
    VnnlibError::Unsupported { file: None, line: Some(line), message: message.into() }
}

fn invalid(line: Option<usize>, message: impl Into<String>) -> VnnlibError {
    VnnlibError::Invalid { file: None, line, message: message.into() }
}

type Result<T> = std::result::Result<T, VnnlibError>;

impl Property {
    /// Parses VNN-LIB text. Errors carry line numbers.
    pub fn parse(text: &str) -> Result<Property> {
        parse_bytes(text.as_bytes())
    }

    /// Reads and parses a `.vnnlib` file. Errors also name the file. Gzip-compressed files are
    /// refused with an error asking to decompress them.
    pub fn read(path: &Path) -> Result<Property> {
        let bytes = std::fs::read(path).map_err(|err| VnnlibError::Io { path: path.to_path_buf(), err })?;
        if bytes.starts_with(&[0x1f, 0x8b]) || path.extension().is_some_and(|e| e == "gz") {
            return Err(VnnlibError::Unsupported {
                file: Some(path.to_path_buf()),
                line: None,
                message: "gzip-compressed VNN-LIB files are not supported; decompress it first (gunzip -k)".into(),
            });
        }
        parse_bytes(&bytes).map_err(|e| e.with_file(path))
    }

    /// Whether `y` satisfies case `k`'s output conjunction (every atom `c . y <= d` holds), i.e.
    /// whether `y` is unsafe for an input in case `k`'s box. Panics if `k` is out of range.
    pub fn case_holds(&self, k: usize, y: &[f64]) -> bool {
        self.cases[k].atoms.iter().all(|&a| self.atoms[a].holds(y))
    }

    /// The distinct input boxes `(lo, hi, cases)`, in order of first use, each with the indices
    /// of the cases that use it (most files have one box).
    pub fn input_boxes(&self) -> Vec<(Vec<f64>, Vec<f64>, Vec<usize>)> {
        let mut seen: HashMap<Vec<u64>, usize> = HashMap::new();
        let mut out: Vec<(Vec<f64>, Vec<f64>, Vec<usize>)> = Vec::new();
        for (k, case) in self.cases.iter().enumerate() {
            let key: Vec<u64> = case.lo.iter().chain(&case.hi).map(|v| v.to_bits()).collect();
            match seen.get(&key) {
                Some(&b) => out[b].2.push(k),
                None => {
                    seen.insert(key, out.len());
                    out.push((case.lo.clone(), case.hi.clone(), vec![k]));
                }
            }
        }
        out
    }

    /// Each distinct input box with its unsafe region: the conjunctions of its cases, each as
    /// `(c, d)` pairs (the atom holds when c . y <= d).
    pub fn regions(&self) -> Vec<Region> {
        self.input_boxes()
            .into_iter()
            .map(|(lo, hi, cases)| Region {
                lo,
                hi,
                any_of: cases
                    .iter()
                    .map(|&k| self.cases[k].atoms.iter().map(|&a| (self.atoms[a].c.clone(), self.atoms[a].d)).collect())
                    .collect(),
            })
            .collect()
    }
}

/// An input box and the unsafe outputs over it: a disjunction of conjunctions of c . y <= d.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub any_of: Vec<Vec<(Vec<f64>, f64)>>,
}

// ---------------------------------------------------------------------------------------------
// S-expressions

enum Sx<'a> {
    Atom(&'a [u8], usize),
    List(Vec<Sx<'a>>, usize),
}

impl Sx<'_> {
    fn line(&self) -> usize {
        match self {
            Sx::Atom(_, l) | Sx::List(_, l) => *l,
        }
    }
}

/// A token for messages: lossy UTF-8, shortened.
fn show(t: &[u8]) -> String {
    let s = String::from_utf8_lossy(t);
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// An s-expression for messages and atom texts, on one line.
fn render(sx: &Sx, out: &mut String) {
    match sx {
        Sx::Atom(t, _) => out.push_str(&String::from_utf8_lossy(t)),
        Sx::List(items, _) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                render(item, out);
            }
            out.push(')');
        }
    }
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b';' | b'"' | b'|')
}

/// Reads all top-level s-expressions, iteratively (no recursion on the input's nesting).
fn read_sexprs(src: &[u8]) -> Result<Vec<Sx<'_>>> {
    let mut top = Vec::new();
    let mut stack: Vec<(Vec<Sx>, usize)> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b';' => {
                while i < src.len() && src[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(unsupported(line, format!("parentheses nested more than {MAX_DEPTH} deep")));
                }
                stack.push((Vec::new(), line));
                i += 1;
            }
            b')' => {
                let Some((items, open)) = stack.pop() else {
                    return Err(syntax(line, "unexpected ')' without a matching '('"));
                };
                let node = Sx::List(items, open);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(node),
                    None => top.push(node),
                }
                i += 1;
            }
            b'"' => return Err(unsupported(line, "string literals are not supported")),
            b'|' => return Err(unsupported(line, "quoted symbols |...| are not supported")),
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < src.len() && !is_delimiter(src[i]) {
                    i += 1;
                }
                let node = Sx::Atom(&src[start..i], line);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(node),
                    None => top.push(node),
                }
            }
        }
    }
    if let Some((_, open)) = stack.last() {
        return Err(syntax(*open, "unclosed '(': missing ')' before the end of the file"));
    }
    Ok(top)
}

/// A decimal literal: `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`. None if `t` is not one.
fn parse_number(t: &[u8]) -> Option<f64> {
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < t.len() && t[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut i = 0;
    if i < t.len() && matches!(t[i], b'+' | b'-') {
        i += 1;
    }
    let mut n = digits(&mut i);
    if i < t.len() && t[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return None;
    }
    if i < t.len() && matches!(t[i], b'e' | b'E') {
        i += 1;
        if i < t.len() && matches!(t[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != t.len() {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

fn looks_numeric(t: &[u8]) -> bool {
    matches!(t, [b'0'..=b'9' | b'.', ..] | [b'+' | b'-', b'0'..=b'9' | b'.', ..])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Var {
    X(usize),
    Y(usize),
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Var::X(i) => write!(f, "X_{i}"),
            Var::Y(j) => write!(f, "Y_{j}"),
        }
    }
}

/// `X_<i>` or `Y_<j>` with a decimal index without leading zeros. None if `t` does not start
/// with `X_` / `Y_`; Some(None) if it does but the index is malformed.
fn parse_var(t: &[u8]) -> Option<Option<Var>> {
    let (is_y, rest) = match t {
        [b'X', b'_', rest @ ..] => (false, rest),
        [b'Y', b'_', rest @ ..] => (true, rest),
        _ => return None,
    };
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) || (rest.len() > 1 && rest[0] == b'0') {
        return Some(None);
    }
    let index: Option<usize> = std::str::from_utf8(rest).ok().and_then(|s| s.parse().ok());
    Some(index.map(|i| if is_y { Var::Y(i) } else { Var::X(i) }))
}

// ---------------------------------------------------------------------------------------------
// Linear terms

/// `sum coef * var + k`, terms sorted by variable, no zero coefficients.
#[derive(Clone, Debug)]
struct Lin {
    terms: Vec<(Var, f64)>,
    k: f64,
}

impl Lin {
    fn constant(k: f64) -> Lin {
        Lin { terms: Vec::new(), k }
    }

    /// `self + s * other`.
    fn add_scaled(self, other: &Lin, s: f64) -> Lin {
        let (a, b) = (&self.terms, &other.terms);
        let mut terms = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                terms.push(a[i]);
                i += 1;
            } else if i == a.len() || b[j].0 < a[i].0 {
                terms.push((b[j].0, s * b[j].1));
                j += 1;
            } else {
                let c = a[i].1 + s * b[j].1;
                if c != 0.0 {
                    terms.push((a[i].0, c));
                }
                i += 1;
                j += 1;
            }
        }
        terms.retain(|t| t.1 != 0.0);
        Lin { terms, k: self.k + s * other.k }
    }

    fn scale(mut self, s: f64) -> Lin {
        for t in &mut self.terms {
            t.1 *= s;
        }
        self.terms.retain(|t| t.1 != 0.0);
        self.k *= s;
        self
    }

    fn is_finite(&self) -> bool {
        self.k.is_finite() && self.terms.iter().all(|t| t.1.is_finite())
    }
}

// ---------------------------------------------------------------------------------------------
// Normal form

#[derive(Clone, Copy, Debug)]
struct Bound {
    input: usize,
    value: f64,
    upper: bool,
}

/// A conjunction: input bounds and output atoms (indices into the atom list).
#[derive(Clone, Debug, Default)]
struct Conj {
    bounds: Vec<Bound>,
    outs: Vec<usize>,
}

impl Conj {
    fn len(&self) -> usize {
        self.bounds.len() + self.outs.len()
    }

    fn extend(&mut self, other: &Conj) {
        self.bounds.extend_from_slice(&other.bounds);
        self.outs.extend_from_slice(&other.outs);
    }
}

/// A disjunction of conjunctions. Empty is false; one empty conjunction is true.
#[derive(Debug, Default)]
struct Dnf {
    conjs: Vec<Conj>,
    /// The total length of the conjunctions, kept so that a long chain of asserts costs
    /// linear time.
    literals: usize,
}

impl Dnf {
    fn truth(holds: bool) -> Dnf {
        Dnf { conjs: if holds { vec![Conj::default()] } else { Vec::new() }, literals: 0 }
    }

    fn single(conj: Conj) -> Dnf {
        Dnf { literals: conj.len(), conjs: vec![conj] }
    }

    fn len(&self) -> usize {
        self.conjs.len()
    }
}

fn too_many_literals(line: usize, literals: usize) -> VnnlibError {
    unsupported(line, format!("the property's disjunctive normal form would hold {literals} literals; too large"))
}

fn too_many_cases(line: usize, cases: usize) -> VnnlibError {
    unsupported(
        line,
        format!(
            "the property expands to {cases} cases in disjunctive normal form (more than {MAX_CASES}); \
             this combination of 'and' and 'or' is not supported"
        ),
    )
}

/// The conjunction of two normal forms, distributing `and` over `or` (a-major order).
fn and(mut a: Dnf, b: Dnf, line: usize) -> Result<Dnf> {
    if a.len() == 0 || b.len() == 0 {
        return Ok(Dnf::truth(false));
    }
    let cases = a.len().saturating_mul(b.len());
    if cases > MAX_CASES {
        return Err(too_many_cases(line, cases));
    }
    let literals = a.literals.saturating_mul(b.len()).saturating_add(b.literals.saturating_mul(a.len()));
    if literals > MAX_LITERALS {
        return Err(too_many_literals(line, literals));
    }
    if b.len() == 1 {
        for c in &mut a.conjs {
            c.extend(&b.conjs[0]);
        }
        return Ok(Dnf { conjs: a.conjs, literals });
    }
    let mut conjs = Vec::with_capacity(cases);
    for ca in &a.conjs {
        for cb in &b.conjs {
            let mut c = ca.clone();
            c.extend(cb);
            conjs.push(c);
        }
    }
    Ok(Dnf { conjs, literals })
}

/// `n / a` rounded up (`up`) or down, from the f64 values `n` and `a != 0`.
fn div_directed(n: f64, a: f64, up: bool) -> f64 {
    let q = n / a;
    if !q.is_finite() {
        return q;
    }
    // r = q * a - n with one rounding, which keeps its sign.
    let r = q.mul_add(a, -n);
    // q > n / a  <=>  q * a - n has the sign of a.
    let q_above = if a > 0.0 { r > 0.0 } else { r < 0.0 };
    let q_below = if a > 0.0 { r < 0.0 } else { r > 0.0 };
    if up && q_below {
        next_up(q)
    } else if !up && q_above {
        next_down(q)
    } else {
        q
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Le,
    Lt,
    Ge,
    Gt,
    Eq,
}

struct Builder {
    num_inputs: usize,
    num_outputs: usize,
    atoms: Vec<OutputAtom>,
    atom_index: HashMap<(Vec<(usize, u64)>, u64), usize>,
}

impl Builder {
    fn term(&self, sx: &Sx) -> Result<Lin> {
        let lin = match sx {
            Sx::Atom(t, line) => {
                if let Some(var) = parse_var(t) {
                    let var = var.ok_or_else(|| syntax(*line, format!("bad variable name '{}'", show(t))))?;
                    let declared = match var {
                        Var::X(i) => i < self.num_inputs,
                        Var::Y(j) => j < self.num_outputs,
                    };
                    if !declared {
                        return Err(syntax(*line, format!("undeclared variable '{}'", show(t))));
                    }
                    Lin { terms: vec![(var, 1.0)], k: 0.0 }
                } else if looks_numeric(t) {
                    let v = parse_number(t).ok_or_else(|| syntax(*line, format!("bad number '{}'", show(t))))?;
                    if !v.is_finite() {
                        return Err(invalid(Some(*line), format!("number '{}' is out of range", show(t))));
                    }
                    Lin::constant(v)
                } else {
                    return Err(syntax(*line, format!("unknown symbol '{}' where a term was expected", show(t))));
                }
            }
            Sx::List(items, line) => {
                let line = *line;
                let op = head(items, line, "a term")?;
                let args = &items[1..];
                let need = |n: usize| {
                    if args.len() < n {
                        Err(syntax(
                            line,
                            format!("'{}' needs at least {n} argument(s), found {}", show(op), args.len()),
                        ))
                    } else {
                        Ok(())
                    }
                };
                match op {
                    b"+" => {
                        need(1)?;
                        let mut acc = self.term(&args[0])?;
                        for a in &args[1..] {
                            acc = acc.add_scaled(&self.term(a)?, 1.0);
                        }
                        acc
                    }
                    b"-" => {
                        need(1)?;
                        let first = self.term(&args[0])?;
                        if args.len() == 1 {
                            first.scale(-1.0)
                        } else {
                            let mut acc = first;
                            for a in &args[1..] {
                                acc = acc.add_scaled(&self.term(a)?, -1.0);
                            }
                            acc
                        }
                    }
                    b"*" => {
                        need(1)?;
                        let mut factor = 1.0;
                        let mut variable: Option<Lin> = None;
                        for a in args {
                            let t = self.term(a)?;
                            if t.terms.is_empty() {
                                factor *= t.k;
                            } else if variable.is_some() {
                                return Err(unsupported(
                                    line,
                                    "nonlinear term: a product may have at most one non-constant factor",
                                ));
                            } else {
                                variable = Some(t);
                            }
                        }
                        match variable {
                            Some(v) => v.scale(factor),
                            None => Lin::constant(factor),
                        }
                    }
                    b"/" | b"div" | b"mod" | b"abs" | b"to_real" | b"ite" => {
                        return Err(unsupported(line, format!("function '{}' is not supported in terms", show(op))))
                    }
                    _ => {
                        return Err(syntax(line, format!("unknown function '{}' where a term was expected", show(op))))
                    }
                }
            }
        };
        if !lin.is_finite() {
            return Err(invalid(Some(sx.line()), "numeric overflow while evaluating a term"));
        }
        Ok(lin)
    }

    fn formula(&mut self, sx: &Sx) -> Result<Dnf> {
        match sx {
            Sx::Atom(b"true", _) => Ok(Dnf::truth(true)),
            Sx::Atom(b"false", _) => Ok(Dnf::truth(false)),
            Sx::Atom(t, line) => {
                Err(syntax(*line, format!("expected a formula such as (<= a b), found '{}'", show(t))))
            }
            Sx::List(items, line) => {
                let line = *line;
                let op = head(items, line, "a formula")?;
                let args = &items[1..];
                let cmp = match op {
                    b"and" => {
                        let mut acc = Dnf::truth(true);
                        for a in args {
                            let d = self.formula(a)?;
                            acc = and(acc, d, line)?;
                        }
                        return Ok(acc);
                    }
                    b"or" => {
                        let mut acc = Dnf::truth(false);
                        for a in args {
                            let d = self.formula(a)?;
                            if acc.len() + d.len() > MAX_CASES {
                                return Err(too_many_cases(line, acc.len() + d.len()));
                            }
                            acc.literals += d.literals;
                            if acc.literals > MAX_LITERALS {
                                return Err(too_many_literals(line, acc.literals));
                            }
                            acc.conjs.extend(d.conjs);
                        }
                        return Ok(acc);
                    }
                    b"<=" => Cmp::Le,
                    b"<" => Cmp::Lt,
                    b">=" => Cmp::Ge,
                    b">" => Cmp::Gt,
                    b"=" => Cmp::Eq,
                    b"not" | b"=>" | b"xor" | b"ite" | b"distinct" | b"let" | b"forall" | b"exists" => {
                        return Err(unsupported(line, format!("'{}' is not supported in formulas", show(op))))
                    }
                    _ => {
                        return Err(syntax(
                            line,
                            format!("unknown function '{}' where a formula was expected", show(op)),
                        ))
                    }
                };
                if args.len() != 2 {
                    return Err(syntax(line, format!("'{}' takes 2 arguments, found {}", show(op), args.len())));
                }
                self.comparison(sx, cmp, &args[0], &args[1], line)
            }
        }
    }

    fn comparison(&mut self, sx: &Sx, cmp: Cmp, a: &Sx, b: &Sx, line: usize) -> Result<Dnf> {
        let (a, b) = (self.term(a)?, self.term(b)?);
        // lin <= 0 (or < 0, or = 0) is the atom.
        let lin = match cmp {
            Cmp::Le | Cmp::Lt | Cmp::Eq => a.add_scaled(&b, -1.0),
            Cmp::Ge | Cmp::Gt => b.add_scaled(&a, -1.0),
        };
        if !lin.is_finite() {
            return Err(invalid(Some(line), "numeric overflow while evaluating a comparison"));
        }
        let first_x = lin.terms.iter().find(|t| matches!(t.0, Var::X(_)));
        let first_y = lin.terms.iter().find(|t| matches!(t.0, Var::Y(_)));
        match (first_x, first_y) {
            (None, None) => {
                let holds = match cmp {
                    Cmp::Le | Cmp::Ge => lin.k <= 0.0,
                    Cmp::Lt | Cmp::Gt => lin.k < 0.0,
                    Cmp::Eq => lin.k == 0.0,
                };
                Ok(Dnf::truth(holds))
            }
            (Some(x), Some(y)) => Err(unsupported(
                line,
                format!(
                    "constraint mixes inputs and outputs ({} and {}); only bounds on inputs and constraints \
                     over outputs are supported",
                    x.0, y.0
                ),
            )),
            (Some(&(var, a)), None) => {
                if lin.terms.len() > 1 {
                    return Err(unsupported(line, "linear constraints over several inputs are not supported yet"));
                }
                let Var::X(input) = var else { unreachable!("first_x is an input") };
                // a * x + k <= 0  <=>  a * x <= -k.
                let n = -lin.k;
                // `+ 0.0` turns -0 into +0, so that equal boxes have equal bits.
                let upper = |v: f64| Bound { input, value: v + 0.0, upper: true };
                let lower = |v: f64| Bound { input, value: v + 0.0, upper: false };
                let bounds = if cmp == Cmp::Eq {
                    vec![lower(div_directed(n, a, false)), upper(div_directed(n, a, true))]
                } else if a > 0.0 {
                    vec![upper(div_directed(n, a, true))]
                } else {
                    vec![lower(div_directed(n, a, false))]
                };
                if bounds.iter().any(|b| !b.value.is_finite()) {
                    return Err(invalid(Some(line), format!("the bound on {var} overflows")));
                }
                Ok(Dnf::single(Conj { bounds, outs: Vec::new() }))
            }
            (None, Some(_)) => {
                if cmp == Cmp::Eq {
                    return Err(unsupported(line, "'=' over outputs is not supported (only <=, >=, <, >)"));
                }
                let key_terms: Vec<(usize, u64)> = lin
                    .terms
                    .iter()
                    .map(|&(v, c)| match v {
                        Var::Y(j) => (j, (c + 0.0).to_bits()),
                        Var::X(_) => unreachable!("no inputs in this atom"),
                    })
                    .collect();
                let d = -lin.k + 0.0;
                let key = (key_terms, d.to_bits());
                let index = match self.atom_index.get(&key) {
                    Some(&i) => i,
                    None => {
                        if (self.atoms.len() + 1).saturating_mul(self.num_outputs) > MAX_DENSE {
                            return Err(unsupported(line, "too many distinct output constraints"));
                        }
                        let mut c = vec![0.0; self.num_outputs];
                        for &(j, bits) in &key.0 {
                            c[j] = f64::from_bits(bits);
                        }
                        let mut text = String::new();
                        render(sx, &mut text);
                        let i = self.atoms.len();
                        self.atoms.push(OutputAtom { c, d, line, text });
                        self.atom_index.insert(key, i);
                        i
                    }
                };
                Ok(Dnf::single(Conj { bounds: Vec::new(), outs: vec![index] }))
            }
        }
    }
}

/// The head symbol of a non-empty list.
fn head<'a>(items: &[Sx<'a>], line: usize, what: &str) -> Result<&'a [u8]> {
    match items.first() {
        Some(Sx::Atom(t, _)) => Ok(t),
        Some(Sx::List(..)) => Err(syntax(line, format!("expected a function name at the start of {what}"))),
        None => Err(syntax(line, format!("empty list '()' where {what} was expected"))),
    }
}

/// A declared variable: name, sort, line.
fn declaration(items: &[Sx], line: usize, fun: bool) -> Result<Var> {
    let cmd = if fun { "declare-fun" } else { "declare-const" };
    let (name, sort) = match (fun, items) {
        (false, [_, name, sort]) => (name, sort),
        (true, [_, name, Sx::List(params, _), sort]) if params.is_empty() => (name, sort),
        (true, [_, _, Sx::List(..), _]) => {
            return Err(unsupported(line, "declare-fun with parameters is not supported"));
        }
        _ => {
            let form = if fun { "(declare-fun X_0 () Real)" } else { "(declare-const X_0 Real)" };
            return Err(syntax(line, format!("malformed {cmd}; expected {form}")));
        }
    };
    let Sx::Atom(name, _) = name else {
        return Err(syntax(line, format!("{cmd}: expected a variable name")));
    };
    match sort {
        Sx::Atom(b"Real", _) => {}
        Sx::Atom(s @ (b"Int" | b"Bool"), _) => {
            return Err(unsupported(line, format!("sort '{}' is not supported (only Real)", show(s))));
        }
        Sx::Atom(s, _) => return Err(syntax(line, format!("unknown sort '{}' (expected Real)", show(s)))),
        Sx::List(..) => return Err(syntax(line, "unknown sort (expected Real)")),
    }
    match parse_var(name) {
        Some(Some(v)) => Ok(v),
        Some(None) => Err(syntax(line, format!("bad variable name '{}'", show(name)))),
        None => Err(unsupported(
            line,
            format!("variable '{}': only inputs X_<i> and outputs Y_<j> are supported", show(name)),
        )),
    }
}

/// Checks that the declared indices are exactly 0..n-1; returns n. `decls` are (index, line).
fn check_indices(mut decls: Vec<(usize, usize)>, prefix: char, what: &str) -> Result<usize> {
    decls.sort_unstable();
    for w in decls.windows(2) {
        if w[0].0 == w[1].0 {
            let (i, first, second) = (w[0].0, w[0].1.min(w[1].1), w[0].1.max(w[1].1));
            return Err(invalid(Some(second), format!("{prefix}_{i} is declared twice (also at line {first})")));
        }
    }
    let n = decls.len();
    if let Some(pos) = decls.iter().enumerate().position(|(k, d)| d.0 != k) {
        let (i, line) = decls[pos];
        let missing = pos;
        return Err(invalid(
            Some(line),
            format!(
                "{prefix}_{i} is declared but {prefix}_{missing} is not: the {n} {what} must be \
                 {prefix}_0 .. {prefix}_{}",
                n - 1
            ),
        ));
    }
    Ok(n)
}

fn parse_bytes(src: &[u8]) -> Result<Property> {
    let top = read_sexprs(src)?;

    // Pass 1: declarations; collect the asserts.
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut asserts: Vec<(&Sx, usize)> = Vec::new();
    for cmd in &top {
        let (items, line) = match cmd {
            Sx::List(items, line) => (items, *line),
            Sx::Atom(t, line) => {
                return Err(syntax(*line, format!("unexpected '{}' outside parentheses", show(t))));
            }
        };
        match head(items, line, "a command")? {
            b"declare-const" => match declaration(items, line, false)? {
                Var::X(i) => xs.push((i, line)),
                Var::Y(j) => ys.push((j, line)),
            },
            b"declare-fun" => match declaration(items, line, true)? {
                Var::X(i) => xs.push((i, line)),
                Var::Y(j) => ys.push((j, line)),
            },
            b"assert" => match &items[1..] {
                [f] => asserts.push((f, line)),
                other => {
                    return Err(syntax(line, format!("'assert' takes one formula, found {}", other.len())));
                }
            },
            b"set-logic" | b"set-info" | b"set-option" | b"check-sat" | b"get-model" | b"exit" => {}
            op @ (b"define-fun" | b"declare-sort" | b"define-sort" | b"push" | b"pop") => {
                return Err(unsupported(line, format!("command '{}' is not supported", show(op))));
            }
            op => return Err(syntax(line, format!("unknown command '{}'", show(op)))),
        }
    }
    let x_lines: Vec<usize> = {
        let mut v = xs.clone();
        v.sort_unstable();
        v.iter().map(|d| d.1).collect()
    };
    let num_inputs = check_indices(xs, 'X', "inputs")?;
    let num_outputs = check_indices(ys, 'Y', "outputs")?;
    if num_inputs == 0 {
        return Err(invalid(None, "no inputs declared (expected (declare-const X_0 Real) ...)"));
    }
    if num_outputs == 0 {
        return Err(invalid(None, "no outputs declared (expected (declare-const Y_0 Real) ...)"));
    }

    // Pass 2: the conjunction of the asserts, in disjunctive normal form.
    let mut b = Builder { num_inputs, num_outputs, atoms: Vec::new(), atom_index: HashMap::new() };
    let mut dnf = Dnf::truth(true);
    for (f, line) in asserts {
        let d = b.formula(f)?;
        dnf = and(dnf, d, line)?;
    }

    // Boxes.
    if dnf.len().saturating_mul(num_inputs) > MAX_DENSE {
        return Err(VnnlibError::Unsupported {
            file: None,
            line: None,
            message: format!("{} cases over {num_inputs} inputs are too many to store", dnf.len()),
        });
    }
    let total = dnf.len();
    let mut cases = Vec::with_capacity(total);
    for (k, conj) in dnf.conjs.into_iter().enumerate() {
        let mut lo = vec![f64::NEG_INFINITY; num_inputs];
        let mut hi = vec![f64::INFINITY; num_inputs];
        for bd in &conj.bounds {
            if bd.upper {
                hi[bd.input] = hi[bd.input].min(bd.value);
            } else {
                lo[bd.input] = lo[bd.input].max(bd.value);
            }
        }
        if lo.iter().zip(&hi).any(|(l, h)| l > h) {
            continue; // an empty box: the case can never be satisfied
        }
        for i in 0..num_inputs {
            let side = if lo[i] == f64::NEG_INFINITY {
                "lower"
            } else if hi[i] == f64::INFINITY {
                "upper"
            } else {
                continue;
            };
            let which = if total > 1 { format!(" in case {} of {total}", k + 1) } else { String::new() };
            return Err(invalid(None, format!("X_{i} (declared at line {}) has no {side} bound{which}", x_lines[i])));
        }
        let mut atoms = conj.outs;
        atoms.sort_unstable();
        atoms.dedup();
        cases.push(Case { lo, hi, atoms });
    }
    if cases.is_empty() {
        return Err(invalid(
            None,
            if total == 0 {
                "the property is unsatisfiable: its formula is false".to_string()
            } else {
                format!("every one of the {total} case(s) has an empty input box or a false constraint")
            },
        ));
    }
    Ok(Property { num_inputs, num_outputs, atoms: b.atoms, cases })
}
