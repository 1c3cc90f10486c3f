#!/usr/bin/env bash
# The seed files at the seeds' settings on the datasets this machine has, one after another;
# each run folder resumes where it stopped, so re-running this script continues the queue.
#   bash scripts/seed-runs.sh [NAME ...]     (default: every run below, in order)
#   bash scripts/seed-runs.sh --background   (what is left: the queues below, one thread each,
#                                             and the watcher that commits their state to
#                                             runs-kept/; add --dry-run to print, not start, them)
# A run folder missing here (a new machine) is first restored from runs-kept/NAME, the snapshot
# that `python scripts/keep-runs.py watch NAME...` commits as a run goes (see that script).
# Each finished run's tables and figures go to docs/studies/NAME/README.md, opened by the seed's
# findings beside ours (docs/studies/NAME/findings.md, written by hand from the run) when there
# is one; runs/NAME/report.html gets the same table.
set -euo pipefail
cd "$(dirname "$0")/.."
sp=".venv/bin/saddlepoint"

run() {  # run NAME FILE [study-run options...]
    local name=$1 file=$2
    shift 2
    .venv/bin/python scripts/keep-runs.py restore "$name"
    echo "== $name: $sp study run $file --out runs/$name $* ($(date -u +%H:%M:%S))"
    "$sp" --quiet study run "$file" --out "runs/$name" "$@"
    render "$name"
}

render() {  # render NAME: the HTML report and the docs page, with the findings table if any
    local preface=()
    [ -f "docs/studies/$1/findings.md" ] && preface=(--preface "docs/studies/$1/findings.md")
    "$sp" report "runs/$1" "${preface[@]}"
    "$sp" report "runs/$1" --markdown "docs/studies/$1" "${preface[@]}"
}

copy_missing() {  # copy_missing FILE TARGET: copy a model file over unless it is absent or the
    # target exists already (a study trains what it lacks, and keeps what it has)
    [ -f "$1" ] && [ ! -f "$2" ] && { mkdir -p "$(dirname "$2")"; cp "$1" "$2"; }
    return 0
}

reuse_original() {  # reuse_original FROM TO KEY: 002 §4's network is 002 §2's (the same recipe,
    # so the study takes it as its own model KEY instead of training it again; when 002 §2's run
    # folder is gone the study trains that network itself; 002 §3's reduced run trains its own)
    .venv/bin/python scripts/keep-runs.py restore "$1" "$2"
    copy_missing "runs/$1/models/classifier.safetensors" "runs/$2/models/$3.safetensors"
}

reuse_models() {  # reuse_models FROM TO [PATTERN]: the models of run FROM whose names match
    # PATTERN (default: all), for a run that changes only what is done with them (the study
    # takes a model file whose recorded recipe is its own, and trains it otherwise)
    .venv/bin/python scripts/keep-runs.py restore "$1" "$2"
    local file
    for file in "runs/$1"/models/${3:-*}.{json,safetensors}; do
        copy_missing "$file" "runs/$2/models/${file##*/}"
    done
}

reuse_classifiers() {  # reuse_classifiers FROM TO: seed 004's pre-trained C1 and C2
    reuse_models "$1" "$2" 'c[12]-*'
}

declare -A RUNS=(
    [seed003-mnist]="run seed003-mnist experiments/seed003-deepfool-mnist.yaml"
    [seed002-s2-mnist]="run seed002-s2-mnist experiments/seed002-s2-fast-gradient-cifar10.yaml --dataset mnist"
    # 10,000 training images (not 50,000), every epoch as in the file: on all 50,000, PGD-AT
    # alone would take about 2.4 h of a core and the training-set rows five times as long (the
    # report prints the projection from its epochs); the original network trains on the same
    # 10,000, so 002 §2's is not reused
    [seed002-s3-mnist]="run seed002-s3-mnist experiments/seed002-s3-adversarial-training-cifar10.yaml --dataset mnist --train-limit 10000"
    # one-pixel probing costs ~0.6 s per MNIST image: 1,000 test images, not 10,000
    [seed002-s4-mnist]="reuse_original seed002-s2-mnist seed002-s4-mnist target; run seed002-s4-mnist experiments/seed002-s4-blackbox-cifar10.yaml --dataset mnist --param images=1000"
    # 10,000 training images (not 50,000) and 2,000 test images: ~30 min instead of ~2.5 h
    [seed000-s4-mnist]="run seed000-s4-mnist experiments/seed000-s4-overfitting-cifar10.yaml --dataset mnist --train-limit 10000 --param images=2000"
    # the grid on 1,000 test images (not 10,000): about a tenth of the ~4.5 h the full grid takes
    [seed000-s2-mnist]="run seed000-s2-mnist experiments/seed000-s2-grid-cifar10.yaml --dataset mnist --param images=1000"
    # the attacks on the first 1,000 test images (not 10,000); every model trains as in the file
    [seed000-s5-mnist]="run seed000-s5-mnist experiments/seed000-s5-defenses-cifar10.yaml --dataset mnist --param images=1000"
    # the transfer attacks on 2,000 test images (not 10,000); every surrogate trains as in the file
    [seed000-s3-mnist]="run seed000-s3-mnist experiments/seed000-s3-transfer-cifar10.yaml --dataset mnist --param images=2000"
    # seed 004 on 2,000 training and 2,000 test images (not 50,000 / 10,000), every epoch and t
    # as in the file: 2.4 h of a core (two runs sharing two cores) instead of ~71; the report
    # projects the full scale from the epochs it ran; a stopped run resumes at its next (mode, t)
    [seed004-mnist]="run seed004-mnist experiments/seed004-generative-mnist.yaml --train-limit 2000 --param images=2000"
    # Two checks of seed004-mnist's weak attackers (C1 keeps 95.5% at t = 0.08 where the seed's
    # falls to ~20%), at t = 0.08, consecutive mode, everything else as that run: the CW margin
    # instead of the seed's cross-entropy (is it the loss?), and 10,000 training images instead
    # of 2,000, five times the attacker's updates (is it the reduction?), in both modes, since in
    # alternating mode the reduced run's C1 fends off every attacker up to t = 0.32
    [seed004-check-cw]="run seed004-check-cw experiments/seed004-generative-mnist.yaml --train-limit 2000 --param images=2000 --param loss=cw --param 't=[0.08]' --param 'modes=[consecutive]' --param 'compare_t=[0.08]'"
    [seed004-check-10k]="run seed004-check-10k experiments/seed004-generative-mnist.yaml --train-limit 10000 --param images=2000 --param 't=[0.08]' --param 'modes=[consecutive, alternating]' --param 'compare_t=[0.08]'"
    # A third check, of the seed's text: it adds the perturbation to the image and says nothing
    # of clipping. Unclipped, white-box PGD at 0.08 leaves seed004-mnist's C1 12.5% (clipped:
    # 59.1%), so the seed's ~80% / ~20% at t = 0.04 / 0.08 may come from unclipped images. Both
    # modes at those two t, the classifiers reused from seed004-mnist (the same recipe)
    [seed004-check-noclip]="reuse_classifiers seed004-mnist seed004-check-noclip; run seed004-check-noclip experiments/seed004-generative-mnist.yaml --train-limit 2000 --param images=2000 --param clip=false --param 't=[0.04, 0.08]'"
    # A check of seed000-s3-mnist, where at the seed's 8/255 no surrogate moves the target (98.65-
    # 98.9% against 99.34% clean): the same surrogates at MNIST's scale, eps 0.2 with the seed's
    # ratios kept (PGD step eps/4 = 0.05, 50 steps; FGSM at eps/4), on 1,000 test images
    [seed000-s3-check-eps0.2]="reuse_models seed000-s3-mnist seed000-s3-check-eps0.2; run seed000-s3-check-eps0.2 experiments/seed000-s3-transfer-cifar10.yaml --dataset mnist --param images=1000 --param eps=0.2 --param pgd_step=0.05 --param fgsm_eps=0.05"
    # Fashion-MNIST, the closer stand-in for CIFAR-10, with the MNIST runs' reductions
    [seed002-s2-fashion]="run seed002-s2-fashion experiments/seed002-s2-fast-gradient-cifar10.yaml --dataset fashion-mnist"
    [seed000-s4-fashion]="run seed000-s4-fashion experiments/seed000-s4-overfitting-cifar10.yaml --dataset fashion-mnist --train-limit 10000 --param images=2000"
    [seed000-s2-fashion]="run seed000-s2-fashion experiments/seed000-s2-grid-cifar10.yaml --dataset fashion-mnist --param images=1000"
    [seed000-s3-fashion]="run seed000-s3-fashion experiments/seed000-s3-transfer-cifar10.yaml --dataset fashion-mnist --param images=2000"
    [seed000-s5-fashion]="run seed000-s5-fashion experiments/seed000-s5-defenses-cifar10.yaml --dataset fashion-mnist --param images=1000"
    [seed002-s4-fashion]="reuse_original seed002-s2-fashion seed002-s4-fashion target; run seed002-s4-fashion experiments/seed002-s4-blackbox-cifar10.yaml --dataset fashion-mnist --param images=1000"
    [seed002-s3-fashion]="run seed002-s3-fashion experiments/seed002-s3-adversarial-training-cifar10.yaml --dataset fashion-mnist --train-limit 10000"
)
# At CIFAR-10's radii MNIST moves much less (000 §2's best attack at 8/255 leaves 69% of MNIST
# digits, 4% of CIFAR-10 images), so each seed file also runs on Fashion-MNIST, the closer
# stand-in.
# 002 §3 last: even reduced to 10,000 training images its PGD-AT (10 epochs of 20-step PGD) and
# the attacks on the training and test sets take a few hours of a core; training resumes epoch by
# epoch (models/pgd-at.training.pt), so it runs across sessions
ORDER=(seed003-mnist seed002-s2-mnist seed002-s4-mnist seed000-s4-mnist seed000-s2-mnist
    seed000-s2-fashion seed000-s5-mnist seed004-mnist seed004-check-cw seed004-check-10k
    seed000-s3-mnist seed002-s2-fashion seed004-check-noclip seed000-s3-check-eps0.2
    seed000-s4-fashion seed002-s4-fashion seed000-s3-fashion seed000-s5-fashion seed002-s3-mnist
    seed002-s3-fashion)

# What is left, as queues of one thread each (OMP_NUM_THREADS=1). A listed run that has finished
# costs little (its folder comes back from runs-kept/ and every section is skipped); take it out
# once its report and findings are in docs/studies/. An empty queue starts nothing. Three queues
# on two cores share them: the runs finish no sooner each, but no core idles at the end while
# one long queue is left (002 §3 Fashion-MNIST has the most hours left).
QUEUE_A=()
QUEUE_B=()
QUEUE_C=()

# The whole entry point is one function, called on the last line: bash reads a script as it runs
# it, so an edit to this file while a queue runs could otherwise change what the queue does next.
main() {
    if [ "${1:-}" = "--background" ]; then  # the queues and the keep-runs watcher, detached
        local dry="" queue name
        [ "${2:-}" = "--dry-run" ] && dry=1
        watched=()
        for queue in a b c; do  # check every queue before starting any
            declare -n names="QUEUE_${queue^^}"
            for name in "${names[@]}"; do
                [ -n "${RUNS[$name]:-}" ] || { echo "seed-runs: QUEUE_${queue^^} names" \
                    "'$name', which is no run here; runs: ${ORDER[*]}" >&2; exit 2; }
                [[ " ${watched[*]} " != *" $name "* ]] || { echo "seed-runs:" \
                    "'$name' is in two queues: two processes would share one run folder" >&2
                    exit 2; }
                watched+=("$name")
            done
            unset -n names
        done
        if [ "${#watched[@]}" -eq 0 ]; then
            echo "seed-runs: every queue is empty (QUEUE_A, QUEUE_B and QUEUE_C in $0):" \
                "nothing to start; name runs there, or run one: bash $0 NAME" >&2
            exit 0
        fi
        stamp=$(date -u +%Y%m%d-%H%M)
        [ -n "$dry" ] || mkdir -p runs/logs
        for queue in a b c; do
            declare -n names="QUEUE_${queue^^}"
            if [ "${#names[@]}" -gt 0 ] && [ -n "$dry" ]; then
                echo "queue $queue: ${names[*]}"
            elif [ "${#names[@]}" -gt 0 ]; then
                OMP_NUM_THREADS=1 nohup bash "$0" "${names[@]}" \
                    > "runs/logs/queue-$queue-$stamp.log" 2>&1 &
            fi
            unset -n names
        done
        if [ -n "$dry" ]; then
            echo "watcher: ${watched[*]}"
        elif [ "${#watched[@]}" -gt 0 ]; then
            nohup .venv/bin/python scripts/keep-runs.py watch --every 900 "${watched[@]}" \
                > "runs/logs/keep-$stamp.log" 2>&1 &
            echo "queues and watcher started; logs: runs/logs/*-$stamp.log"
        fi
        exit 0
    fi
    if [ "${1:-}" = "--render" ]; then  # re-render finished runs (after editing findings.md)
        shift
        for name in "$@"; do render "$name"; done
        exit 0
    fi
    for name in "${@:-${ORDER[@]}}"; do
        [ -n "${RUNS[$name]:-}" ] || {
            echo "seed-runs: no run named '$name'; runs: ${ORDER[*]}" >&2
            exit 2
        }
        eval "${RUNS[$name]}"
    done
}

main "$@"; exit
