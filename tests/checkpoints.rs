//! Checkpoints: PyTorch-compatible safetensors, exact resume, atomic writes
//! under kills, clear errors for bad files; divergence detection; two
//! models training at once on one device.

mod common;

use std::path::{Path, PathBuf};

use fusedmlp::data::Dataset;
use fusedmlp::train::{Checkpoint, Kernels};
use fusedmlp::{Activation, Error, Mlp, MlpConfig, Optimizer, TrainConfig, Trainer};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fusedmlp-ckpt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn data() -> (Dataset, Dataset) {
    let all = fusedmlp::data::blobs(300, 3, 6, 1.5, 4).unwrap();
    all.split(0.2, 1).unwrap()
}

fn config() -> (MlpConfig, TrainConfig) {
    let mut m = MlpConfig::deep(6, 4, 24, 3, Activation::Tanh);
    m.seed = 3;
    let t = TrainConfig::default()
        .with_epochs(3)
        .with_batch_size(16)
        .with_learning_rate(0.01)
        .with_optimizer(Optimizer::adam())
        .with_clip_norm(1.0)
        .with_log_every(7)
        .with_seed(9);
    (m, t)
}

/// Resuming mid-epoch continues bit-identically: Adam's two state tensors
/// of every parameter tensor (weights and biases; with learned PReLU slopes
/// and LayerNorm, theirs too, which a checkpoint lists after the linear
/// layers') come back where they were.
#[test]
fn resuming_mid_epoch_is_bit_identical() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data();
    let (plain, t) = config();
    let mut slopes = plain
        .clone()
        .with_learn_prelu(fusedmlp::nn::PreluMode::PerUnit);
    slopes.activation = Activation::Prelu { weight: 0.25 };
    let norms = plain
        .clone()
        .with_layer_norm(fusedmlp::nn::NormPlacement::Before);
    // Every trained value: weights and biases, slopes, norms' scales and shifts.
    let values = |model: &Mlp| {
        (
            model.parameters().unwrap(),
            model.slope_values().unwrap(),
            model.norm_values().unwrap(),
        )
    };
    let dir = temp_dir("resume");
    let path = dir.join("run.safetensors");
    let mut ckpt = None;
    for m in [plain, slopes, norms] {
        // One run straight through.
        let mut straight =
            Trainer::new(Mlp::new(&gpu, m.clone()).unwrap(), t.clone(), &train, &val).unwrap();
        straight.train("straight", |_, _| {}, |_| {}).unwrap();
        let want = values(straight.model());
        // The same run interrupted mid-epoch, saved, resumed.
        let mut first =
            Trainer::new(Mlp::new(&gpu, m.clone()).unwrap(), t.clone(), &train, &val).unwrap();
        let stop = first.steps_per_epoch() as u64 + 5;
        first.stop_after(stop);
        let r = first.train("first", |_, _| {}, |_| {}).unwrap();
        assert_eq!(r.total_steps, stop);
        first.save_checkpoint(&path).unwrap();
        drop(first);
        let c = Checkpoint::load(&path).unwrap();
        let mut resumed = Trainer::resume(&gpu, &c, &train, &val, None).unwrap();
        assert_eq!(resumed.steps_taken(), stop);
        resumed.train("resumed", |_, _| {}, |_| {}).unwrap();
        let got = values(resumed.model());
        assert!(
            got == want,
            "resumed parameters differ from the uninterrupted run ({:?}, {:?})",
            m.learn_prelu,
            m.layer_norm
        );
        ckpt.get_or_insert(c);
    }
    let ckpt = ckpt.unwrap();
    // Resuming on other data is refused.
    let (other, _) = fusedmlp::data::blobs(300, 3, 6, 1.5, 5)
        .unwrap()
        .split(0.2, 1)
        .unwrap();
    let err = Trainer::resume(&gpu, &ckpt, &other, &val, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("same data"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_weights_file_has_pytorch_names_and_shapes() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data();
    let (m, t) = config();
    let mut tr = Trainer::new(Mlp::new(&gpu, m.clone()).unwrap(), t, &train, &val).unwrap();
    tr.run_steps(3).unwrap();
    let dir = temp_dir("names");
    let path = dir.join("model.safetensors");
    tr.save_checkpoint(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut want = Vec::new();
    for (l, (fan_in, fan_out)) in m.layer_shapes().into_iter().enumerate() {
        want.push(format!("layers.{l}.bias"));
        want.push(format!("layers.{l}.weight"));
        assert_eq!(
            st.tensor(&format!("layers.{l}.weight")).unwrap().shape(),
            &[fan_out, fan_in]
        );
        assert_eq!(
            st.tensor(&format!("layers.{l}.bias")).unwrap().shape(),
            &[fan_out]
        );
    }
    want.sort();
    assert_eq!(names, want, "only the model's tensors, named as in PyTorch");
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.params, tr.model().parameters().unwrap());
    assert_eq!(loaded.model, m);
    let _ = std::fs::remove_dir_all(dir);
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data();
    let (m, t) = config();
    let mut tr = Trainer::new(Mlp::new(&gpu, m).unwrap(), t, &train, &val).unwrap();
    tr.run_steps(2).unwrap();
    let dir = temp_dir("bad");
    let good = dir.join("good.safetensors");
    tr.save_checkpoint(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let good_copy = dir.join("copy").join("good.safetensors");
    tr.save_checkpoint(&good_copy).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty",
            vec![],
            "not a fusedmlp model or checkpoint: the file is empty",
        ),
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "truncated or corrupted",
        ),
        (
            "garbage",
            b"this is not a checkpoint at all".to_vec(),
            "it is text",
        ),
        // Regression: a CSV given as a checkpoint was called truncated or
        // corrupted; it is not a checkpoint at all, and the message says so.
        (
            "csv",
            b"x0,x1,label\n0.5,0.25,1\n-1,2,0\n".to_vec(),
            "not a fusedmlp model or checkpoint: it is text (a CSV or JSON file?)",
        ),
        (
            "binary",
            vec![0xff; 64],
            "does not begin as a safetensors file does",
        ),
    ];
    // A configuration whose shapes do not match the tensors.
    let (from, to) = (b"[24,24,24,24]", b"[24,24,25,24]");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("hidden widths in the metadata");
    let mut reshaped = bytes.clone();
    reshaped[at..at + from.len()].copy_from_slice(to);
    cases.push(("shape", reshaped, "shape"));
    for (name, content, want) in &cases {
        let p = dir.join(format!("{name}.safetensors"));
        write(&p, content);
        let err = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
        println!("{name}: {err}");
    }
    // A missing file names the path; a missing sidecar names the sidecar.
    let err = Checkpoint::load(&dir.join("nope.safetensors")).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("nope.safetensors"),
        "{err}"
    );
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".optim-") {
            let side = e.path();
            let mut sb = std::fs::read(&side).unwrap();
            let k = sb.len() - 1;
            sb[k] ^= 1;
            write(&side, &sb);
            let err = Checkpoint::load(&good).unwrap_err().to_string();
            assert!(err.contains("checksum"), "{err}");
            std::fs::remove_file(&side).unwrap();
            let err = Checkpoint::load(&good).unwrap_err().to_string();
            assert!(err.contains("optimizer state"), "{err}");
        }
    }
    // A model-only checkpoint cannot be resumed.
    let mut model_only = Checkpoint::load(&good_copy).unwrap();
    model_only.training = None;
    let err = Trainer::resume(&gpu, &model_only, &train, &val, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no training state"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The child side of the kill test: saves checkpoints in a loop until killed.
#[test]
#[ignore = "run by checkpoint_writes_survive_kills in a child process"]
fn child_saver() {
    let Ok(dir) = std::env::var("FUSEDMLP_KILL_TEST_DIR") else {
        return;
    };
    let path = Path::new(&dir).join("c.safetensors");
    let model = MlpConfig::deep(16, 3, 64, 4, Activation::Relu);
    for i in 0u32.. {
        // Every value of save i is i: a torn file would mix values.
        let params = model
            .layer_shapes()
            .iter()
            .map(|&(a, b)| (vec![i as f32; a * b], vec![i as f32; b]))
            .collect();
        Checkpoint {
            model: model.clone(),
            params,
            training: None,
            standardizer: None,
            slopes: vec![Vec::new(); 4],
            norms: vec![(Vec::new(), Vec::new()); 4],
            running: vec![(Vec::new(), Vec::new()); 4],
        }
        .save(&path)
        .unwrap();
    }
}

#[test]
fn checkpoint_writes_survive_kills() {
    let dir = temp_dir("kill");
    let exe = std::env::current_exe().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..12u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "child_saver", "--ignored", "--test-threads=1"])
            .env("FUSEDMLP_KILL_TEST_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let the child start saving (a loaded machine may take a while to
        // start it), then kill it at a pseudo-random moment of the loop.
        let path = dir.join("c.safetensors");
        let started = std::time::Instant::now();
        let spawned = std::time::SystemTime::now();
        let written_since_spawn = || {
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(|t| t >= spawned)
                .unwrap_or(false)
        };
        while !written_since_spawn() && started.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let wait = 20 + (round * 7919 % 180);
        std::thread::sleep(std::time::Duration::from_millis(wait));
        child.kill().unwrap();
        child.wait().unwrap();
        if !path.exists() {
            continue;
        }
        let c = Checkpoint::load(&path)
            .unwrap_or_else(|e| panic!("round {round}: torn checkpoint: {e}"));
        let v = c.params[0].0[0];
        assert!(
            c.params
                .iter()
                .all(|(w, b)| w.iter().chain(b).all(|&x| x == v)),
            "round {round}: mixed saves"
        );
        seen.insert(v as u32);
    }
    println!(
        "loaded checkpoints from {} distinct saves after kills",
        seen.len()
    );
    assert!(
        seen.len() >= 3,
        "the child saved too few checkpoints to test anything"
    );
    // Temporary files of killed writes are left behind at worst, never the checkpoint.
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn divergence_is_caught_and_named() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data();
    let mut m = MlpConfig::deep(6, 6, 24, 3, Activation::Relu);
    m.seed = 1;
    let t = TrainConfig::default()
        .with_epochs(5)
        .with_batch_size(16)
        .with_learning_rate(1e9)
        .with_log_every(5);
    let dir = temp_dir("diverge");
    let path = dir.join("good.safetensors");
    let mut tr = Trainer::new(Mlp::new(&gpu, m).unwrap(), t, &train, &val).unwrap();
    tr.set_checkpointing(&path, 1);
    let report = tr.train("relu", |_, _| {}, |_| {}).unwrap();
    let d = report
        .divergence
        .clone()
        .expect("a learning rate of 1e9 must diverge");
    println!("{}", report.outcome);
    assert!(
        report.outcome.contains(&format!("step {}", d.step)),
        "{}",
        report.outcome
    );
    assert!(
        report.outcome.contains("learning rate"),
        "{}",
        report.outcome
    );
    assert!(["activation", "gradient", "weight", "loss"].contains(&d.tensor.as_str()));
    // Typed too: the step and where.
    assert_eq!(
        report.status,
        fusedmlp::train::Outcome::Diverged {
            step: d.step,
            location: d.location()
        }
    );
    assert!(
        report.total_steps < 5 * tr.steps_per_epoch() as u64,
        "the run must stop early"
    );
    // The last good checkpoint is named and loads.
    let good = d
        .last_good_checkpoint
        .expect("checkpoints were written every step");
    let c = Checkpoint::load(&good).unwrap();
    assert!(c
        .params
        .iter()
        .all(|(w, b)| w.iter().chain(b).all(|v| v.is_finite())));
    let _ = std::fs::remove_dir_all(dir);
}

/// Divergence found by the kernels that fold plain SGD in (the fused
/// path's output layer and weight gradients, with the finite checks; input
/// and hidden widths multiples of 4) is the divergence the optimizer's and
/// the finite check's own dispatches find on the layered path: the same
/// step, tensor and layer.
#[test]
fn divergence_is_named_alike_with_sgd_folded_in() {
    let Some(gpu) = common::gpu() else { return };
    let all = fusedmlp::data::blobs(300, 3, 8, 1.5, 4).unwrap();
    let (train, val) = all.split(0.2, 1).unwrap();
    let run = |kernels: Kernels, lr: f32| {
        let mut m = MlpConfig::deep(8, 6, 24, 3, Activation::Relu);
        m.seed = 1;
        let t = TrainConfig::default()
            .with_epochs(3)
            .with_batch_size(16)
            .with_optimizer(Optimizer::sgd())
            .with_kernels(kernels)
            .with_learning_rate(lr)
            .with_log_every(5);
        let mut tr = Trainer::new(Mlp::new(&gpu, m).unwrap(), t, &train, &val).unwrap();
        let report = tr.train("relu", |_, _| {}, |_| {}).unwrap();
        report.divergence.map(|d| (d.step, d.tensor, d.layer))
    };
    for lr in [1e9, 1e30] {
        let folded = run(Kernels::Fused, lr);
        assert!(folded.is_some(), "a learning rate of {lr} must diverge");
        assert_eq!(folded, run(Kernels::Layered, lr), "learning rate {lr}");
    }
}

#[test]
fn two_models_train_at_once_on_one_device() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data();
    let run = |act: Activation| {
        let mut m = MlpConfig::deep(6, 5, 20, 3, act);
        m.seed = 2;
        let t = TrainConfig::default()
            .with_epochs(2)
            .with_batch_size(16)
            .with_learning_rate(0.05);
        let mut tr = Trainer::new(Mlp::new(&gpu, m).unwrap(), t, &train, &val).unwrap();
        tr.train("x", |_, _| {}, |_| {}).unwrap();
        tr.model().parameters().unwrap()
    };
    let alone_a = run(Activation::Relu);
    let alone_b = run(Activation::Tanh);
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(Activation::Relu));
        let hb = s.spawn(|| run(Activation::Tanh));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_eq!(
        a, alone_a,
        "relu run differs when trained alongside another"
    );
    assert_eq!(
        b, alone_b,
        "tanh run differs when trained alongside another"
    );
}
