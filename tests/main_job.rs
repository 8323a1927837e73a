//! The main job's result holds on every seed: with the recipe of the
//! `relu_vs_sigmoid` example (`compare::main_job_recipe`), the 20-layer ReLU
//! net ends trained and the 20-layer sigmoid net ends at chance with a
//! vanished gradient, on both kernel paths.
//!
//! The full check (5 seeds, 40 epochs, both paths: about 10 minutes on 2
//! cores) is `#[ignore]`d; `scripts/main-job-seeds.sh` runs it. The default
//! suite trains a reduced version with looser thresholds.

mod common;

use fusedmlp::compare::{self, Contender, SeedRuns};
use fusedmlp::train::{Kernels, Seeds};
use fusedmlp::{data, Activation, Gpu, MlpConfig};

fn train(gpu: &Gpu, epochs: usize, seeds: &str, kernels: Kernels) -> SeedRuns {
    let digits = data::digits().unwrap();
    let base = MlpConfig::deep(64, 20, 64, 10, Activation::Relu);
    let train_rows = digits.split(0.2, 0).unwrap().0.len();
    let mut recipe = compare::main_job_recipe(train_rows, epochs, 0);
    recipe.kernels = kernels;
    let contenders = [
        Contender::new(Activation::Relu),
        Contender::new(Activation::Sigmoid),
    ];
    let seeds: Seeds = seeds.parse().unwrap();
    compare::compare_seeds(
        gpu,
        &base,
        &recipe,
        &seeds,
        |seed| digits.split(0.2, seed),
        &contenders,
        |_, _, _, _| {},
        |_, _| {},
    )
    .unwrap()
}

/// Per seed: (ReLU's last-epoch validation accuracy, ReLU's lowest of the
/// last 5, sigmoid's last-epoch validation accuracy, sigmoid's first-to-last
/// hidden gradient-norm ratio at the last logged step).
fn outcomes(runs: &SeedRuns) -> Vec<(f32, f32, f32, f32)> {
    runs.runs
        .iter()
        .map(|pair| {
            let relu = compare::summarize(&pair[0]);
            let sigmoid = compare::summarize(&pair[1]);
            assert!(pair[0].divergence.is_none() && pair[1].divergence.is_none());
            (
                relu.val_accuracy,
                relu.val_accuracy_min_last5,
                sigmoid.val_accuracy,
                sigmoid.grad_ratio_end,
            )
        })
        .collect()
}

#[test]
fn a_reduced_main_job_trains_relu_and_leaves_sigmoid_at_chance_on_two_seeds() {
    let Some(gpu) = common::gpu() else { return };
    // 10 epochs (cosine over 10, warm-up 2) on seeds 0 and 1.
    let runs = train(&gpu, 10, "0..2", Kernels::Auto);
    println!("{}", compare::seed_table(&runs));
    for (seed, (relu, _, sigmoid, ratio)) in runs.seeds.iter().zip(outcomes(&runs)) {
        assert!(relu >= 0.60, "seed {seed}: relu val acc {relu}");
        assert!(sigmoid <= 0.20, "seed {seed}: sigmoid val acc {sigmoid}");
        assert!(ratio < 1e-8, "seed {seed}: sigmoid ‖g1‖/‖gL‖ {ratio:e}");
    }
    // The epoch's end is evaluated on the whole training split too.
    let last = runs.runs[0][0].epochs.last().unwrap();
    assert!(last.train_eval_accuracy.is_finite() && last.train_eval_accuracy > 0.60);
    assert!(last.train_eval_loss.is_finite() && last.train_eval_loss > 0.0);
}

#[test]
#[ignore = "about 10 minutes on 2 cores; run by scripts/main-job-seeds.sh"]
fn the_main_job_holds_on_five_seeds_and_both_kernel_paths() {
    let Some(gpu) = common::gpu() else { return };
    let fused = train(&gpu, 40, "0..5", Kernels::Fused);
    println!("fused:\n{}", compare::seed_table(&fused));
    let layered = train(&gpu, 40, "0..5", Kernels::Layered);
    println!("layered:\n{}", compare::seed_table(&layered));
    let mut failures = Vec::new();
    for (path, runs) in [("fused", &fused), ("layered", &layered)] {
        for (seed, (relu, relu_min5, sigmoid, ratio)) in runs.seeds.iter().zip(outcomes(runs)) {
            println!(
                "{path} seed {seed}: relu val {relu:.4} (lowest of last 5 {relu_min5:.4}), \
                 sigmoid val {sigmoid:.4}, sigmoid ‖g1‖/‖gL‖ {ratio:.2e}"
            );
            if relu < 0.90 {
                failures.push(format!(
                    "{path} seed {seed}: relu last val acc {relu} < 0.90"
                ));
            }
            if relu_min5 < 0.80 {
                failures.push(format!(
                    "{path} seed {seed}: relu val acc {relu_min5} < 0.80 in the last 5 epochs"
                ));
            }
            if sigmoid > 0.20 {
                failures.push(format!(
                    "{path} seed {seed}: sigmoid val acc {sigmoid} > 0.20"
                ));
            }
            if ratio >= 1e-8 {
                failures.push(format!(
                    "{path} seed {seed}: sigmoid ‖g1‖/‖gL‖ {ratio:e} >= 1e-8"
                ));
            }
        }
    }
    for ((seed, f), l) in fused
        .seeds
        .iter()
        .zip(outcomes(&fused))
        .zip(outcomes(&layered))
    {
        let gap = (f.0 - l.0).abs();
        println!(
            "seed {seed}: relu last val acc fused {:.4}, layered {:.4}, gap {gap:.4}",
            f.0, l.0
        );
        if gap > 0.03 {
            failures.push(format!(
                "seed {seed}: fused and layered relu val acc differ by {gap} > 0.03"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
