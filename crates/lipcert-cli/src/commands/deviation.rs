use crate::commands::control::{build_system, LeadArg, SystemArg};
use crate::render::{print_json, table};
use anyhow::{bail, Context};
use lipcert_bounds::Method;
use lipcert_core::Network;
use lipcert_io::NpyArray;
use lipcert_prune::deviation::{certified, closed_form, observed_max, Certified, CertifyOptions, ClosedForm, Observed};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the states come from: a box given as two .npy files, the state box of a built-in
/// control system, or the input box of a VNN-LIB property.
#[derive(clap::Args, Clone)]
pub struct BoxArgs {
    /// The state box: lower and upper bounds, one value per model input.
    #[arg(long = "box", num_args = 2, value_names = ["LO.npy", "HI.npy"])]
    pub bounds: Vec<PathBuf>,
    /// The state box of a built-in control system (see `lipcert control info`).
    #[arg(long, value_enum, conflicts_with = "bounds")]
    pub system: Option<SystemArg>,
    /// The input box of a VNN-LIB property (the hull of its boxes when it has several).
    #[arg(long, conflicts_with_all = ["bounds", "system"])]
    pub vnnlib: Option<PathBuf>,
}

/// A resolved box and a phrase that says where it came from.
pub struct StateBox {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub source: String,
}

fn read_vector(path: &Path, n: usize) -> anyhow::Result<Vec<f64>> {
    let a = NpyArray::read(path).map_err(anyhow::Error::msg).with_context(|| format!("{}", path.display()))?;
    if a.data.len() != n {
        bail!("{}: {} values, the model has {n} inputs", path.display(), a.data.len());
    }
    Ok(a.data)
}

impl BoxArgs {
    /// The box, if one was given; checked against the model's input size.
    pub fn resolve(&self, net: &Network) -> anyhow::Result<Option<StateBox>> {
        let n = net.input_len();
        let b = if let [lo, hi] = self.bounds.as_slice() {
            StateBox {
                lo: read_vector(lo, n)?,
                hi: read_vector(hi, n)?,
                source: format!("the box [{}, {}]", lo.display(), hi.display()),
            }
        } else if let Some(s) = self.system {
            let sys = build_system(s, LeadArg::Constant)?;
            let (lo, hi): (Vec<f64>, Vec<f64>) = sys.state_box().into_iter().unzip();
            if lo.len() != n {
                bail!("the {} system has {} states, the model {n} inputs", sys.name(), lo.len());
            }
            StateBox { lo, hi, source: format!("the {} state box", sys.name()) }
        } else if let Some(p) = &self.vnnlib {
            let prop = super::load_property(p, net)?;
            let boxes = prop.input_boxes();
            let mut lo = boxes[0].0.clone();
            let mut hi = boxes[0].1.clone();
            for (l, h, _) in &boxes[1..] {
                for i in 0..n {
                    lo[i] = lo[i].min(l[i]);
                    hi[i] = hi[i].max(h[i]);
                }
            }
            StateBox { lo, hi, source: format!("the input box of {}", p.display()) }
        } else {
            return Ok(None);
        };
        b.check(n).map(Some)
    }
}

impl StateBox {
    /// A box given as arrays (`source` says where from), checked against `n` model inputs.
    pub fn new(lo: Vec<f64>, hi: Vec<f64>, source: &str, n: usize) -> anyhow::Result<StateBox> {
        if lo.len() != n || hi.len() != n {
            bail!("{source}: {} and {} values, the model has {n} inputs", lo.len(), hi.len());
        }
        StateBox { lo, hi, source: source.to_string() }.check(n)
    }

    /// Rejects an element that is not a finite interval.
    fn check(self, n: usize) -> anyhow::Result<StateBox> {
        let b = self;
        if let Some(i) = (0..n).find(|&i| !b.lo[i].is_finite() || !b.hi[i].is_finite() || b.lo[i] > b.hi[i]) {
            bail!("{}: element {i} is [{}, {}], not a finite interval", b.source, b.lo[i], b.hi[i]);
        }
        Ok(b)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BoundMethod {
    Ibp,
    Crown,
    AlphaCrown,
}

impl BoundMethod {
    fn method(self) -> Method {
        match self {
            BoundMethod::Ibp => Method::Ibp,
            BoundMethod::Crown => Method::Crown,
            BoundMethod::AlphaCrown => Method::AlphaCrown,
        }
    }
}

/// Options of the three deviation measures, shared with `lipcert prune --sweep`.
#[derive(clap::Args, Clone)]
pub struct MeasureArgs {
    /// Bound propagation for the certified bound.
    #[arg(long, value_enum, default_value = "crown")]
    pub bound: BoundMethod,
    /// Input-box splits that refine the certified bound (default: 4096 for models with at most
    /// 16 inputs, 0 otherwise, where splitting one input at a time does little).
    #[arg(long)]
    pub splits: Option<usize>,
    /// Time limit for the splits, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Sampled states for the observed deviation (then gradient ascent from the worst).
    #[arg(long, default_value_t = 100_000)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The three measures of one (original, pruned) pair.
pub struct Measures {
    /// Err: the closed form does not apply to this graph (the reason).
    pub closed: Result<ClosedForm, String>,
    pub certified: Certified,
    pub observed: Observed,
}

impl MeasureArgs {
    pub fn splits_for(&self, net: &Network) -> usize {
        self.splits.unwrap_or(if net.input_len() <= 16 { 4096 } else { 0 })
    }
    pub fn bound_method(&self) -> Method {
        self.bound.method()
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn measure(&self, f: &Network, g: &Network, b: &StateBox) -> anyhow::Result<Measures> {
        let splits = self.splits_for(f);
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
        let opts = CertifyOptions {
            method: self.bound.method(),
            splits,
            deadline: Some(Instant::now() + Duration::from_secs_f64(self.timeout)),
            ..CertifyOptions::default()
        };
        let closed = closed_form(f, g, &b.lo, &b.hi).map_err(|e| e.to_string());
        let certified = certified(f, g, &b.lo, &b.hi, &opts)?;
        let observed = observed_max(f, g, &b.lo, &b.hi, self.samples, self.seed)?;
        // Rounding of the forward passes aside, a sampled deviation above a bound is a bug.
        let slack = 1e-9 * (1.0 + observed.max);
        if observed.max > certified.l2 + slack {
            bail!("internal error: observed deviation {} above the certified bound {}", observed.max, certified.l2);
        }
        if let Ok(c) = &closed {
            if observed.max > c.bound + slack {
                bail!("internal error: observed deviation {} above the closed-form bound {}", observed.max, c.bound);
            }
        }
        Ok(Measures { closed, certified, observed })
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The original model (ONNX).
    original: PathBuf,
    /// The pruned model (ONNX): the same graph with changed weights.
    pruned: PathBuf,
    #[command(flatten)]
    states: BoxArgs,
    #[command(flatten)]
    measure: MeasureArgs,
    /// A control-error budget: also report each layer's admissible ||dW_k||_2 = budget / C_k,max.
    #[arg(long)]
    budget: Option<f64>,
    #[arg(long)]
    json: bool,
}

fn ratio(a: f64, b: f64) -> Value {
    if b > 0.0 {
        json!(a / b)
    } else {
        Value::Null
    }
}

pub fn measures_json(m: &Measures) -> Value {
    let o = m.observed.max;
    json!({
        "closed_form": m.closed.as_ref().ok().map(|c| c.bound),
        "closed_form_unavailable": m.closed.as_ref().err(),
        "printed_first_order": m.closed.as_ref().ok().map(|c| c.printed_first_order),
        "certified": m.certified.l2,
        "certified_per_output": m.certified.per_output,
        "certified_method": m.certified.method,
        "certified_boxes": m.certified.boxes,
        "observed_max": o,
        "observed_at": m.observed.at,
        "observed_samples": m.observed.samples,
        "closed_form_over_observed": m.closed.as_ref().ok().map(|c| ratio(c.bound, o)),
        "certified_over_observed": ratio(m.certified.l2, o),
    })
}

/// The three deviation measures of `g` from `f` over the box, with per-layer norms.
pub struct Outcome {
    pub measures: Measures,
    pub budget: Option<f64>,
    pub source: String,
    pub time_s: f64,
}

/// Measures how far the pruned `g` can move from `f` over `b`; `budget` adds each layer's
/// admissible ||dW_k||_2.
pub fn compute(
    f: &Network,
    g: &Network,
    b: &StateBox,
    measure: &MeasureArgs,
    budget: Option<f64>,
) -> anyhow::Result<Outcome> {
    if let Some(e) = budget {
        if !(e >= 0.0 && e.is_finite()) {
            bail!("--budget must be a finite number >= 0");
        }
    }
    let start = Instant::now();
    let measures = measure.measure(f, g, b)?;
    Ok(Outcome { measures, budget, source: b.source.clone(), time_s: start.elapsed().as_secs_f64() })
}

impl Outcome {
    /// What `deviation --json` prints.
    pub fn to_json(&self) -> Value {
        let budget = self.budget;
        let layers: Vec<Value> = self.measures.closed.as_ref().map_or(vec![], |c| {
            c.layers
                .iter()
                .map(|l| {
                    json!({
                        "node": l.node, "w_norm": l.w_norm, "w_hat_norm": l.w_hat_norm, "dw_norm": l.dw_norm,
                        "c_max": l.c_max, "admissible_dw_norm": budget.map(|e| e / l.c_max),
                    })
                })
                .collect()
        });
        let mut v = measures_json(&self.measures);
        v["norm"] = json!("2");
        v["box"] = json!(self.source);
        v["layers"] = json!(layers);
        v["budget"] = json!(budget);
        v["time_s"] = json!(self.time_s);
        v
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let f = super::load_model(&args.original)?.network;
    let g = super::load_model(&args.pruned)?.network;
    let Some(b) = args.states.resolve(&f)? else {
        bail!("give the states to bound over: --box LO.npy HI.npy, --system NAME or --vnnlib PROP");
    };
    if let Some(e) = args.budget {
        if !(e >= 0.0 && e.is_finite()) {
            bail!("--budget must be a finite number >= 0");
        }
    }
    let bar = std::sync::Arc::new(crate::progress::Progress::new("deviation", None));
    bar.message("closed form, certified bound, observed maximum");
    let beat = bar.heartbeat();
    let out = compute(&f, &g, &b, &args.measure, args.budget);
    drop(beat);
    bar.finish();
    let out = out?;
    if args.json {
        return print_json(&out.to_json());
    }
    let (m, time_s) = (&out.measures, out.time_s);
    println!(
        "deviation sup ||f(s) - f_hat(s)||_2 of {} from {} over {} ({time_s:.2} s)",
        args.pruned.display(),
        args.original.display(),
        b.source
    );
    let o = m.observed.max;
    let over = |v: f64| if o > 0.0 { format!("{:.2}", v / o) } else { "-".into() };
    let mut rows = vec![];
    match &m.closed {
        Ok(c) => {
            rows.push(vec!["closed form (sound, telescoped)".into(), format!("{:.4e}", c.bound), over(c.bound)]);
            rows.push(vec![
                "  paper's Corollary 1 as printed (first order, NOT a bound)".into(),
                format!("{:.4e}", c.printed_first_order),
                over(c.printed_first_order),
            ]);
        }
        Err(e) => rows.push(vec!["closed form".into(), "n/a".into(), e.clone()]),
    }
    rows.push(vec![
        format!("certified ({}, {} boxes)", m.certified.method, m.certified.boxes),
        format!("{:.4e}", m.certified.l2),
        over(m.certified.l2),
    ]);
    rows.push(vec![
        format!("observed max ({} samples + gradient ascent)", m.observed.samples),
        format!("{o:.4e}"),
        "1.00".into(),
    ]);
    print!("{}", table(&["measure", "value", "/ observed"], &rows));
    if let Ok(c) = &m.closed {
        let mut header = vec!["node", "||W||_2", "||W_hat||_2", "||dW||_2", "C_k,max"];
        if args.budget.is_some() {
            header.push("admissible ||dW||_2");
        }
        let rows: Vec<Vec<String>> = c
            .layers
            .iter()
            .map(|l| {
                let mut r = vec![
                    l.node.clone(),
                    format!("{:.4}", l.w_norm),
                    format!("{:.4}", l.w_hat_norm),
                    format!("{:.4e}", l.dw_norm),
                    format!("{:.4e}", l.c_max),
                ];
                if let Some(e) = args.budget {
                    r.push(format!("{:.4e}", e / l.c_max));
                }
                r
            })
            .collect();
        println!("\nper layer (norms are certified upper bounds; C_k,max: Theorem 2 with activation constants)");
        print!("{}", table(&header, &rows));
    }
    Ok(())
}
