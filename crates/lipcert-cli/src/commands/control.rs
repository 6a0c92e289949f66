//! `lipcert control`: neural controllers in closed loop. Train a policy by behaviour cloning
//! of an LQR expert, simulate it (against a pruned copy), describe the systems.

use crate::commands::lipschitz::NormArg;
use crate::render::{print_json, table};
use anyhow::{bail, Context};
use lipcert_control::rollout::ComparisonTraces;
use lipcert_control::{
    compare, evaluate, lqr, rollout, sample_initial_states, system_info, train_policy, Acc, CartPole, CompareOptions,
    Comparison, Evaluation, LeadProfile, LqrExpert, Norm, Pendulum, Quadrotor, System, TrainConfig, Trajectory,
};
use lipcert_core::{Activation, Network};
use lipcert_io::{export_bytes, import_bytes, ExportPrecision};
use lipcert_report::plot::{grid, line_plot, Panel, Series};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Train a policy by behaviour cloning of the system's LQR expert; write it as ONNX.
    Train(TrainArgs),
    /// Run a policy in closed loop from the initial box; with --compare, against a pruned policy.
    Simulate(SimulateArgs),
    /// Describe a system: states, actions, boxes, constraints, LQR gain.
    Info(InfoArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SystemArg {
    Pendulum,
    Cartpole,
    Quadrotor,
    Acc,
}

/// What the lead car does (adaptive cruise control only).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LeadArg {
    /// Constant speed.
    Constant,
    /// Brakes at 4 m/s^2 from t = 5 s for 3 s, then keeps its speed.
    Brake,
}

pub(crate) fn build_system(system: SystemArg, lead: LeadArg) -> anyhow::Result<Box<dyn System>> {
    if lead != LeadArg::Constant && !matches!(system, SystemArg::Acc) {
        bail!("--lead applies to the acc system only");
    }
    Ok(match system {
        SystemArg::Pendulum => Box::new(Pendulum::default()),
        SystemArg::Cartpole => Box::new(CartPole::default()),
        SystemArg::Quadrotor => Box::new(Quadrotor::default()),
        SystemArg::Acc => Box::new(Acc {
            lead: match lead {
                LeadArg::Constant => LeadProfile::Constant,
                LeadArg::Brake => LeadProfile::Brake { start: 5.0, duration: 3.0, decel: 4.0 },
            },
            ..Acc::default()
        }),
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ActivationArg {
    Relu,
    Tanh,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Precision {
    F32,
    F64,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long, value_enum)]
    system: SystemArg,
    /// Activation of the hidden layers (the output layer is linear).
    #[arg(long, value_enum, default_value = "relu")]
    activation: ActivationArg,
    /// Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32,32")]
    hidden: Vec<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the policy (ONNX).
    #[arg(short, long)]
    output: PathBuf,
    /// Training epochs of the first round; each of the DAgger rounds adds a third as many.
    #[arg(long, default_value_t = 120)]
    epochs: usize,
    #[arg(long, default_value_t = 2)]
    dagger_rounds: usize,
    /// Weight precision of the written model. The closed-loop figures are those of the
    /// written model.
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Closed-loop evaluation episodes (policy and expert from the same initial states).
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// Also write the training loss per epoch as an SVG plot.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    #[arg(long, value_enum)]
    system: SystemArg,
    /// The policy (ONNX; input [1, states], output [1, actions]).
    policy: PathBuf,
    /// A second (pruned) policy to compare with the first from the same initial states.
    #[arg(long)]
    compare: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// Steps per episode (default: the system's horizon).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the initial states (uniform in the initial box).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A bound on ||f(x) - f_hat(x)|| over the state box: every visited state in the box is
    /// checked against it (needs --compare).
    #[arg(long, allow_negative_numbers = true)]
    bound: Option<f64>,
    /// Norm of the bound and of the per-step deviations.
    #[arg(long, value_enum, default_value = "2")]
    bound_norm: NormArg,
    /// What the lead car does (acc only).
    #[arg(long, value_enum, default_value = "constant")]
    lead: LeadArg,
    /// Write the trajectories of one episode (states, actions, deviations) as an SVG plot.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The episode to plot.
    #[arg(long, default_value_t = 0)]
    plot_episode: usize,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct InfoArgs {
    #[arg(long, value_enum)]
    system: SystemArg,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Train(a) => train(a),
        Command::Simulate(a) => simulate(a),
        Command::Info(a) => info(a),
    }
}

/// A network of the right size for the system; the error names the file.
fn load_policy(path: &Path, sys: &dyn System) -> anyhow::Result<Network> {
    let net = super::load_model(path)?.network;
    if net.input_len() != sys.state_dim() || net.output_len() != sys.action_dim() {
        bail!(
            "{}: the policy maps {} inputs to {} outputs, but {} has {} states and {} actions",
            path.display(),
            net.input_len(),
            net.output_len(),
            sys.name(),
            sys.state_dim(),
            sys.action_dim()
        );
    }
    Ok(net)
}

/// An evaluation as JSON, without the per-episode list.
fn evaluation_json(e: &Evaluation) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(e)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("per_episode");
    }
    Ok(v)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", 100.0 * rate)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn evaluation_row(name: &str, e: &Evaluation) -> Vec<String> {
    vec![
        name.into(),
        percent(e.success_rate),
        format!("{:.4}", e.mean_cost),
        e.episodes_with_violations.to_string(),
        yes_no(e.all_in_box),
        format!("{:.2e}", e.max_final_goal_error),
    ]
}

const EVALUATION_HEADER: [&str; 6] =
    ["controller", "success", "mean return (cost)", "episodes violating", "in state box", "max final goal error"];

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let sys = build_system(args.system, LeadArg::Constant)?;
    let sys = sys.as_ref();
    if args.hidden.is_empty() || args.hidden.contains(&0) {
        bail!("--hidden needs at least one positive width");
    }
    if args.episodes == 0 || args.epochs == 0 {
        bail!("--episodes and --epochs must be positive");
    }
    let activation = match args.activation {
        ActivationArg::Relu => Activation::Relu,
        ActivationArg::Tanh => Activation::Tanh,
    };
    let mut cfg = TrainConfig::new(args.hidden.clone(), activation, args.seed);
    cfg.epochs = args.epochs;
    cfg.dagger_epochs = args.epochs.div_ceil(3);
    cfg.dagger_rounds = args.dagger_rounds;
    let start = Instant::now();
    let report = train_policy(sys, &cfg).map_err(anyhow::Error::msg).context("training failed")?;
    let time_s = start.elapsed().as_secs_f64();
    let (precision, precision_name) = match args.precision {
        Precision::F32 => (ExportPrecision::F32, "f32"),
        Precision::F64 => (ExportPrecision::F64, "f64"),
    };
    let bytes = export_bytes(&report.network, precision);
    write_file(&args.output, &bytes)?;
    // Evaluate the policy as written (f32 rounding included).
    let policy = import_bytes(&bytes).map_err(anyhow::Error::msg).context("re-reading the written policy")?.network;
    let expert = LqrExpert::new(sys).map_err(anyhow::Error::msg)?;
    let initial = sample_initial_states(sys, args.episodes, args.seed.wrapping_add(1));
    let steps = sys.horizon();
    let e_expert = evaluate(sys, &expert, &initial, steps).map_err(anyhow::Error::msg)?;
    let e_policy = evaluate(sys, &policy, &initial, steps).map_err(anyhow::Error::msg)?;
    let widths: Vec<String> = std::iter::once(sys.state_dim())
        .chain(args.hidden.iter().copied())
        .chain(std::iter::once(sys.action_dim()))
        .map(|w| w.to_string())
        .collect();
    let act_name = match args.activation {
        ActivationArg::Relu => "relu",
        ActivationArg::Tanh => "tanh",
    };
    if let Some(path) = &args.plot {
        let points = report.loss_history.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l)).collect();
        let svg = line_plot(
            &format!("Behaviour cloning: {} [{}] {act_name}", sys.name(), widths.join(" -> ")),
            "epoch",
            "training loss (MSE, normalized actions)",
            &[Series::new("mean minibatch loss", points)],
            true,
        );
        write_file(path, svg.as_bytes())?;
    }
    if args.json {
        return print_json(&json!({
            "system": sys.name(),
            "activation": act_name,
            "hidden": args.hidden,
            "seed": args.seed,
            "params": report.network.param_count(),
            "output": args.output.display().to_string(),
            "precision": precision_name,
            "time_s": time_s,
            "training": report,
            "evaluation": {
                "episodes": args.episodes,
                "steps": steps,
                "expert": evaluation_json(&e_expert)?,
                "policy": evaluation_json(&e_policy)?,
            },
            "plot": args.plot.as_ref().map(|p| p.display().to_string()),
        }));
    }
    println!(
        "trained a {} policy [{}] {act_name}, {} parameters, in {time_s:.1} s",
        sys.name(),
        widths.join(" -> "),
        report.network.param_count()
    );
    println!(
        "data set     {} states ({} uniform in the state box, the rest along expert and DAgger rollouts)",
        report.dataset_size, cfg.uniform_samples
    );
    println!(
        "final loss   {:.3e} (MSE, actions normalized to [-1, 1]); RMSE {:.3e}, max |error| {:.3e} ({})",
        report.final_loss,
        report.final_rmse,
        report.max_abs_error,
        sys.action_names().join(", ")
    );
    println!("wrote        {} (ONNX, {precision_name} weights)", args.output.display());
    if let Some(p) = &args.plot {
        println!("wrote        {} (loss per epoch)", p.display());
    }
    println!("\nclosed loop: {} episodes of {steps} steps from the initial box", args.episodes);
    print!(
        "{}",
        table(&EVALUATION_HEADER, &[evaluation_row("LQR expert", &e_expert), evaluation_row("policy", &e_policy)])
    );
    Ok(())
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let sys = build_system(args.system, args.lead)?;
    let sys = sys.as_ref();
    let policy = load_policy(&args.policy, sys)?;
    let pruned = args.compare.as_ref().map(|p| load_policy(p, sys)).transpose()?;
    if args.bound.is_some() && pruned.is_none() {
        bail!("--bound needs --compare (the bound is on the deviation between two policies)");
    }
    if let Some(b) = args.bound {
        if b.is_nan() || b < 0.0 {
            bail!("--bound must be a non-negative number, got {b}");
        }
    }
    if args.episodes == 0 || args.steps == Some(0) {
        bail!("--episodes and --steps must be positive");
    }
    if args.plot.is_some() && args.plot_episode >= args.episodes {
        bail!("--plot-episode {} is not among the {} episodes", args.plot_episode, args.episodes);
    }
    let steps = args.steps.unwrap_or(sys.horizon());
    let initial = sample_initial_states(sys, args.episodes, args.seed);
    let expert = LqrExpert::new(sys).map_err(anyhow::Error::msg)?;
    let e_expert = evaluate(sys, &expert, &initial, steps).map_err(anyhow::Error::msg)?;
    let norm = match args.bound_norm {
        NormArg::L2 => Norm::L2,
        NormArg::Inf => Norm::Inf,
    };
    let start = Instant::now();
    let (e_policy, comparison) = match &pruned {
        Some(pruned) => {
            let opts = CompareOptions { steps, bound: args.bound, bound_norm: norm, keep_traces: 0 };
            let c = compare(sys, &policy, pruned, &initial, &opts).map_err(anyhow::Error::msg)?;
            (c.original.clone(), Some(c))
        }
        None => (evaluate(sys, &policy, &initial, steps).map_err(anyhow::Error::msg)?, None),
    };
    let time_s = start.elapsed().as_secs_f64();
    if let Some(path) = &args.plot {
        let one = std::slice::from_ref(&initial[args.plot_episode]);
        let svg = match &pruned {
            Some(pruned) => {
                let opts = CompareOptions { steps, bound: args.bound, bound_norm: norm, keep_traces: 1 };
                let c = compare(sys, &policy, pruned, one, &opts).map_err(anyhow::Error::msg)?;
                trajectory_plot(sys, &c.traces[0].original, Some(&c.traces[0]), args.bound, norm)
            }
            None => {
                let t = rollout(sys, &policy, one, steps).map_err(anyhow::Error::msg)?;
                trajectory_plot(sys, &t[0], None, None, norm)
            }
        };
        write_file(path, svg.as_bytes())?;
    }
    if args.json {
        let mut v = json!({
            "system": sys.name(),
            "policy": args.policy.display().to_string(),
            "compare": args.compare.as_ref().map(|p| p.display().to_string()),
            "episodes": args.episodes,
            "steps": steps,
            "seed": args.seed,
            "state_box": sys.state_box(),
            "initial_box": sys.initial_box(),
            "expert": evaluation_json(&e_expert)?,
            "policy_evaluation": evaluation_json(&e_policy)?,
            "time_s": time_s,
            "plot": args.plot.as_ref().map(|p| p.display().to_string()),
        });
        if let Some(c) = &comparison {
            let mut cv = serde_json::to_value(c)?;
            if let Some(o) = cv.as_object_mut() {
                o.remove("traces");
                o.insert("original".into(), evaluation_json(&c.original)?);
                o.insert("pruned".into(), evaluation_json(&c.pruned)?);
            }
            v["comparison"] = cv;
        }
        return print_json(&v);
    }
    println!(
        "{}: {} episodes of {steps} steps (dt = {} s) from the initial box, seed {}",
        sys.name(),
        args.episodes,
        sys.dt(),
        args.seed
    );
    let mut rows = vec![evaluation_row("LQR expert", &e_expert)];
    match &comparison {
        Some(c) => {
            rows.push(evaluation_row(&format!("original ({})", args.policy.display()), &c.original));
            let name = args.compare.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            rows.push(evaluation_row(&format!("pruned ({name})"), &c.pruned));
        }
        None => rows.push(evaluation_row(&format!("policy ({})", args.policy.display()), &e_policy)),
    }
    print!("{}", table(&EVALUATION_HEADER, &rows));
    if let Some(c) = &comparison {
        println!();
        print_comparison(c);
    }
    if let Some(p) = &args.plot {
        println!("wrote {} (episode {})", p.display(), args.plot_episode);
    }
    Ok(())
}

fn print_comparison(c: &Comparison) {
    let n = match c.bound_norm {
        Norm::L2 => "2",
        Norm::Inf => "inf",
    };
    let mut rows = vec![
        vec!["max pointwise action deviation ||f(x) - f_hat(x)||_2".into(), format!("{:.4e}", c.max_action_dev)],
        vec!["  same, l_inf".into(), format!("{:.4e}", c.max_action_dev_inf)],
        vec!["  same, at states in the state box".into(), format!("{:.4e}", c.max_action_dev_in_box)],
        vec![
            format!("max closed-loop action deviation ||a_t - a_hat_t||_{n}"),
            format!("{:.4e}", c.max_closed_loop_action_dev),
        ],
        vec!["max trajectory deviation ||s_t - s_hat_t||_2".into(), format!("{:.4e}", c.max_state_dev)],
        vec!["mean return difference (pruned - original)".into(), format!("{:.4e}", c.mean_cost_difference)],
        vec!["both closed loops stayed in the state box".into(), yes_no(c.all_in_box)],
    ];
    if let Some(b) = c.bound {
        rows.push(vec![format!("bound on ||f(x) - f_hat(x)||_{n} over the state box"), format!("{b:.4e}")]);
        rows.push(vec![
            "visited in-box states checked / exceeding the bound".into(),
            format!("{} / {}", c.states_checked, c.bound_exceeded),
        ]);
    }
    print!("{}", table(&["deviation (maximum over episodes and steps)", "value"], &rows));
    if c.bound.is_some() && c.bound_exceeded > 0 {
        println!("WARNING: the bound is exceeded at {} visited states inside the state box", c.bound_exceeded);
    }
}

/// One panel per state component and per action over time, and with a comparison the
/// per-step deviations.
fn trajectory_plot(
    sys: &dyn System,
    original: &Trajectory,
    compared: Option<&ComparisonTraces>,
    bound: Option<f64>,
    norm: Norm,
) -> String {
    let dt = sys.dt();
    let time = |k: usize| k as f64 * dt;
    let name_a = if compared.is_some() { "original" } else { "policy" };
    let mut panels = vec![];
    let component = |t: &Trajectory, i: usize, states: bool| -> Vec<(f64, f64)> {
        if states {
            t.states.iter().enumerate().map(|(k, s)| (time(k), s[i])).collect()
        } else {
            t.actions.iter().enumerate().map(|(k, a)| (time(k), a[i])).collect()
        }
    };
    let mut add = |title: String, i: usize, states: bool| {
        let mut series = vec![Series::new(name_a, component(original, i, states))];
        if let Some(c) = compared {
            series.push(Series::new("pruned", component(&c.pruned, i, states)));
        }
        panels.push(Panel { title: title.clone(), x_label: "time (s)".into(), y_label: title, series, log_y: false });
    };
    for (i, name) in sys.state_names().iter().enumerate() {
        add(name.to_string(), i, true);
    }
    for (i, name) in sys.action_names().iter().enumerate() {
        add(format!("{name} (applied)"), i, false);
    }
    if let Some(c) = compared {
        let n = match norm {
            Norm::L2 => "2",
            Norm::Inf => "inf",
        };
        let steps = c.action_dev.len();
        let mut series = vec![
            Series::new(
                "pointwise ||f(x) - f_hat(x)||",
                c.action_dev.iter().enumerate().map(|(k, &d)| (time(k), d)).collect(),
            ),
            Series::new(
                "closed loop ||a_t - a_hat_t||",
                c.closed_loop_action_dev.iter().enumerate().map(|(k, &d)| (time(k), d)).collect(),
            ),
        ];
        if let Some(b) = bound {
            series.push(Series::new("bound", vec![(0.0, b), (time(steps.saturating_sub(1)), b)]));
        }
        panels.push(Panel {
            title: format!("action deviation (l_{n})"),
            x_label: "time (s)".into(),
            y_label: "deviation".into(),
            series,
            log_y: true,
        });
        panels.push(Panel {
            title: "trajectory deviation".into(),
            x_label: "time (s)".into(),
            y_label: "||s_t - s_hat_t||_2".into(),
            series: vec![Series::new(
                "state deviation",
                c.state_dev.iter().enumerate().map(|(k, &d)| (time(k), d)).collect(),
            )],
            log_y: true,
        });
    }
    grid(&panels, 2)
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let sys = build_system(args.system, LeadArg::Constant)?;
    let sys = sys.as_ref();
    let info = system_info(sys);
    let design = lqr(sys).map_err(anyhow::Error::msg)?;
    if args.json {
        return print_json(&json!({ "system": info, "lqr": design }));
    }
    let fmt_box = |b: &[(f64, f64)]| b.iter().map(|(lo, hi)| format!("[{lo}, {hi}]")).collect::<Vec<_>>().join(" x ");
    println!("system        {}  (dt = {} s, horizon {} steps)", info.name, info.dt, info.horizon);
    println!("states        {}", info.states.join(", "));
    println!("actions       {}  limits {}", info.actions.join(", "), fmt_box(&info.action_bounds));
    println!("equilibrium   state {:?}, action {:?}", info.equilibrium_state, info.equilibrium_action);
    println!("initial box   {}", fmt_box(&info.initial_box));
    println!("state box     {}", fmt_box(&info.state_box));
    println!("constraints   {}", info.constraints.join("; "));
    let (n, m) = (sys.state_dim(), sys.action_dim());
    let rows: Vec<Vec<String>> = (0..m)
        .map(|i| {
            std::iter::once(info.actions[i].clone())
                .chain((0..n).map(|j| format!("{:.5}", design.k[i * n + j])))
                .collect()
        })
        .collect();
    let mut header = vec!["LQR gain K"];
    header.extend(info.states.iter().map(|s| s.as_str()));
    println!();
    print!("{}", table(&header, &rows));
    println!(
        "closed-loop spectral radius {:.6} (discrete, {} Riccati iterations); expert action sat(a_eq - K (s - s_eq))",
        design.spectral_radius, design.iterations
    );
    Ok(())
}
