//! The command line: exit status 2 for usage errors, 1 for run errors, the
//! message on stderr, no panic or backtrace; and a short real run.

use std::process::Command;

fn fusedmlp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fusedmlp"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_with_the_reason() {
    for (args, want) in [
        (
            vec!["train", "--activation", "reluu"],
            "unknown activation name",
        ),
        (vec!["train", "--optimizer", "lbfgs"], "unknown optimizer"),
        (vec!["train", "--init", "zeros"], "unknown initialiser"),
        (vec!["train", "--head", "hinge"], "unknown output head"),
        (vec!["train", "--epochs=-3"], "invalid value '-3'"),
        (vec!["bench", "--shapes", "12x0x3"], "not a shape"),
        (vec!["train", "--kernels", "fastest"], "unknown kernels"),
        (vec!["bench", "--width", "8"], "--train"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec!["compare", "--seeds", "5..2"],
            "the range 5..2 is empty",
        ),
        (vec!["compare", "--seeds", "x"], "'x' is not a whole number"),
        (
            vec!["compare", "--seeds", "0..3", "--seed", "4"],
            "cannot be used with",
        ),
    ] {
        let (code, _, err) = fusedmlp(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        no_panic(&err);
    }
}

#[test]
fn run_errors_exit_1_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("fusedmlp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "1,2,0\n3,4,1\n5,1\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "train".into(),
                "--data".into(),
                "csv:/no/such/file.csv".into(),
            ],
            "/no/such/file.csv",
        ),
        (
            vec![
                "train".into(),
                "--data".into(),
                format!("csv:{}", ragged.display()),
            ],
            "line 3 has 2 cells",
        ),
        (
            vec!["train".into(), "--width".into(), "0".into()],
            "MlpConfig::hidden[0] is 0; it must be at least 1 unit (set with --depth and --width, or --hidden)",
        ),
        (
            vec!["train".into(), "--batch-size".into(), "100000".into()],
            "it must be at most the training split's",
        ),
        (
            vec!["train".into(), "--lr=-1".into()],
            "TrainConfig::learning_rate is -1; it must be positive and finite (None: the optimizer's default) (set with --lr)",
        ),
        (
            vec![
                "train".into(),
                "--layer-norm".into(),
                "after".into(),
                "--batch-norm".into(),
                "before".into(),
            ],
            "a layer takes one normalisation (set with --batch-norm or --layer-norm)",
        ),
        (
            vec![
                "train".into(),
                "--batch-norm".into(),
                "after".into(),
                "--batch-size".into(),
                "1".into(),
            ],
            "at least 2 with BatchNorm, to estimate a variance (LayerNorm takes any batch) (set with --batch-size)",
        ),
        (
            vec!["train".into(), "--lr".into(), "NaN".into()],
            "TrainConfig::learning_rate is NaN",
        ),
        (
            vec![
                "eval".into(),
                "--checkpoint".into(),
                "/no/such.safetensors".into(),
            ],
            "/no/such.safetensors",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = fusedmlp(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        no_panic(&err);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_then_eval_and_predict_from_the_checkpoint() {
    if std::env::var("FUSEDMLP_REQUIRE_GPU").as_deref() == Ok("0") && fusedmlp::Gpu::new().is_err()
    {
        eprintln!("SKIPPED (NOT PASSED): no GPU adapter");
        return;
    }
    let dir = std::env::temp_dir().join(format!("fusedmlp-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("m.safetensors");
    let ckpt_s = ckpt.display().to_string();
    let (code, out, err) = fusedmlp(&[
        "train",
        "--data",
        "moons:300",
        "--depth",
        "3",
        "--width",
        "16",
        "--epochs",
        "3",
        "--quiet",
        "--checkpoint",
        &ckpt_s,
        "--checkpoint-every",
        "10",
        "--standardize",
        "--batch-norm",
        "before",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("val acc"), "{out}");
    let (code, out, err) = fusedmlp(&["eval", "--checkpoint", &ckpt_s, "--data", "moons:300"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accuracy"), "{out}");
    let input = dir.join("x.csv");
    std::fs::write(&input, "x,y\n0.5,0.2\n-1.0,0.3\n").unwrap();
    let (code, out, err) = fusedmlp(&[
        "predict",
        "--checkpoint",
        &ckpt_s,
        "--input",
        &input.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "class_0,class_1");
    for l in &lines[1..] {
        let p: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{l}");
    }
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "0.5,0.2,9\n").unwrap();
    let (code, _, err) = fusedmlp(&[
        "predict",
        "--checkpoint",
        &ckpt_s,
        "--input",
        &bad.display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("3 features but the model takes 2"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `fusedmlp soak`: a short real soak holds (the process stays flat with
/// every step logged), and nonsense bounds are refused.
#[test]
fn compare_over_seeds_gives_medians_and_ranges() {
    let dir = std::env::temp_dir().join(format!("fusedmlp-cli-seeds-{}", std::process::id()));
    let (code, out, err) = fusedmlp(&[
        "compare",
        "--data",
        "moons:200",
        "--depth",
        "2",
        "--width",
        "8",
        "--epochs",
        "2",
        "--activations",
        "relu,tanh",
        "--seeds",
        "3,7",
        "--quiet",
        "--plots",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    no_panic(&err);
    assert!(
        out.contains("median [lowest, highest] over 2 seeds (3, 7)"),
        "{out}"
    );
    assert!(out.contains("seed 7, run 2/2: tanh"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["seeds"], serde_json::json!([3, 7]));
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json["summary"][1]["label"], "tanh");
    assert!(dir.join("curves.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soak_runs_and_holds() {
    let (code, out, err) = fusedmlp(&[
        "soak",
        "--minutes",
        "0.05",
        "--sample-seconds",
        "1",
        "--max-logged-steps",
        "16",
        "--depth",
        "4",
    ]);
    no_panic(&err);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("soak: held"), "{out}");
    assert!(out.contains("buffers"), "{out}");
    let (code, _, err) = fusedmlp(&["soak", "--minutes", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--minutes"), "{err}");
    no_panic(&err);
}

#[test]
fn bench_train_puts_both_kernel_paths_side_by_side() {
    let dir = std::env::temp_dir().join(format!("fusedmlp-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("train.json");
    let (code, out, err) = fusedmlp(&[
        "bench",
        "--train",
        "--width",
        "16",
        "--depth",
        "3",
        "--batch",
        "8",
        "--repeats",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    no_panic(&err);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let paths: Vec<&str> = rows
        .iter()
        .map(|r| r["kernels"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["fused", "layered"], "{out}");
    let dispatches = |i: usize| rows[i]["dispatches_per_step"].as_u64().unwrap();
    assert!(dispatches(0) > 0 && dispatches(0) < dispatches(1), "{out}");
    assert!(report["peak_gflops"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).ok();
}
