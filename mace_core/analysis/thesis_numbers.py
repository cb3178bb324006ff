"""The thesis's reported numbers (Tables 3-9) and the places where the thesis is ambiguous.

Every value is transcribed from the thesis text (chapter 3), in percent, on the real SYSU-MM01
all-search single-shot protocol, with the thesis's own model selection ("best epoch", picked on the
test set: the thesis has no validation split). ``None`` marks a value the thesis does not report.
Tables in the book put these beside this study's numbers, labelled :data:`THESIS_LABEL`.
"""
from __future__ import annotations

from dataclasses import dataclass

THESIS_LABEL = "thesis, real SYSU-MM01"
THESIS_SELECTION = "best epoch on test"

# Table 3: the baseline replication (40-epoch run, section 3.3.3). No mINP, no std (one run).
TABLE3 = {"R1": 45.59, "R5": 75.19, "R10": 85.84, "R20": 93.44, "mAP": 43.25, "mINP": None}

# Table 4: backbones. Parameter counts are the thesis's totals for the whole MACE network (M).
# The ResNet-50 row is Table 3 (the thesis compares against it); its best epoch (32) is the
# full-data run of experiment 5 and its time is the "~2 h" of section 3.1's range.
TABLE4 = {
    "resnet50": {"R1": 45.59, "R5": 75.19, "R10": 85.84, "mAP": 43.25,
                 "time": None, "params_m": None, "best_epoch": None},
    "seresnet50": {"R1": 45.54, "R5": 74.02, "R10": 85.17, "mAP": 44.74,
                   "time": "~2h", "params_m": 49.3, "best_epoch": 22},
    "efficientnet_b3": {"R1": 36.84, "R5": 66.71, "R10": 79.07, "mAP": 37.70,
                        "time": "~7h", "params_m": 52.1, "best_epoch": 46},
    "tresnet_m": {"R1": 27.71, "R5": 57.09, "R10": 70.31, "mAP": 28.52,
                  "time": "~7h", "params_m": 51.8, "best_epoch": 32},
}

# Table 5: attention modules (after the modality-specific stems and before final pooling).
TABLE5 = {
    "none": {"R1": 45.59, "R5": 75.19, "R10": 85.84, "mAP": 43.25, "best_epoch": None},
    "cam": {"R1": 42.33, "R5": 70.89, "R10": 82.22, "mAP": 42.24, "best_epoch": 22},
    "sam": {"R1": 43.47, "R5": 73.47, "R10": 83.96, "mAP": 43.73, "best_epoch": 34},
    "dam": {"R1": 41.89, "R5": 73.18, "R10": 83.17, "mAP": 43.16, "best_epoch": 28},
}

# Table 6: fusion strategies ("concat" is the baseline of Table 3).
TABLE6 = {
    "concat": {"R1": 45.59, "R5": 75.19, "R10": 85.84, "mAP": 43.25, "best_epoch": None},
    "adaptive": {"R1": 44.02, "R5": 71.94, "R10": 82.12, "mAP": 43.10, "best_epoch": 16},
    "transform": {"R1": 44.57, "R5": 73.73, "R10": 83.67, "mAP": 43.42, "best_epoch": 26},
}

# Table 7: multi-query fusion, (n, strategy) -> R1 / mAP. n = 1 is not in the table; the thesis
# treats Table 3 (45.59 / 43.25) as the single-query reference.
_T7_R1 = {2: (53.54, 51.15, 53.54), 5: (60.10, 49.69, 59.58), 10: (60.62, 43.96, 60.52),
          15: (61.35, 40.10, 61.77), 20: (62.19, 36.98, 62.08)}
_T7_MAP = {2: (49.11, 47.90, 49.11), 5: (54.79, 45.66, 54.64), 10: (55.81, 40.72, 55.70),
           15: (56.76, 37.78, 56.83), 20: (57.28, 35.14, 57.24)}
FUSIONS = ("avg", "max", "weighted")
TABLE7 = {(n, f): {"R1": _T7_R1[n][i], "mAP": _T7_MAP[n][i]}
          for n in _T7_R1 for i, f in enumerate(FUSIONS)}
TABLE7_SINGLE = {"R1": 45.59, "mAP": 43.25}

# Table 8: best results per identity fraction; best epochs from section 3.8's text (50 % not given).
TABLE8 = {
    0.10: {"R1": 13.4, "mAP": 16.5, "best_epoch": 42},
    0.25: {"R1": 21.9, "mAP": 24.3, "best_epoch": 16},
    0.50: {"R1": 31.6, "mAP": 32.0, "best_epoch": None},
    0.75: {"R1": 38.0, "mAP": 37.9, "best_epoch": 20},
    1.00: {"R1": 45.6, "mAP": 43.3, "best_epoch": 32},
}

# Table 9: occlusion robustness. (model, occlusion type) -> clean R1, occluded R1, drops (pp).
# Occluded mAP itself is not reported, only its drop. The occlusion-trained models were trained
# with the type they are tested on. Baseline clean R1 is 44.65 here, not Table 3's 45.59.
TABLE9 = {
    ("baseline", "random_rect"): {"clean_R1": 44.65, "occ_R1": 16.55, "R1_drop": 28.1, "mAP_drop": 24.9},
    ("baseline", "horizontal_band"): {"clean_R1": 44.65, "occ_R1": 16.85, "R1_drop": 27.8, "mAP_drop": 24.6},
    ("baseline", "upper_body"): {"clean_R1": 44.65, "occ_R1": 19.59, "R1_drop": 25.1, "mAP_drop": 20.9},
    ("baseline", "lower_body"): {"clean_R1": 44.65, "occ_R1": 23.85, "R1_drop": 20.8, "mAP_drop": 19.7},
    ("occlusion-trained", "random_rect"): {"clean_R1": 52.35, "occ_R1": 40.36, "R1_drop": 12.0, "mAP_drop": 9.3},
    ("occlusion-trained", "horizontal_band"): {"clean_R1": 49.25, "occ_R1": 37.18, "R1_drop": 12.1, "mAP_drop": 9.6},
}

# Published reference points quoted by the thesis (SYSU all-search, R1 / mAP).
MACE_PAPER = {"R1": 51.64, "mAP": 50.11}


@dataclass(frozen=True)
class Ambiguity:
    """One place where the thesis is unclear or contradicts itself, and what this study does."""

    topic: str
    thesis_says: str
    study_choice: str
    config_keys: tuple[str, ...]   # dotted RunConfig keys that control the choice


AMBIGUITIES: tuple[Ambiguity, ...] = (
    Ambiguity("Distillation weight λ₂",
              "§3.3.1 lists 0.1 for knowledge distillation; §2.4.5 says λ₂ follows a sigmoid ramp-up "
              "from 0 to 1.0 over τ = 60 epochs.",
              "Sigmoid ramp to 1.0 over 60 epochs by default (the method chapter); the fixed 0.1 of "
              "experiment 0 is one setting away. Ye's released distillation code (DDAG, CAJ) has no ramp. "
              "Either value is multiplied by T² (next row).",
              ("loss.kd_schedule", "loss.kd_weight", "loss.kd_rampup_epochs")),
    Ambiguity("Distillation scale T²",
              "Eqs. 7-8 print KL(σ(p/T), σ(p/T)) with no T² factor and give no value of T.",
              "T = 3 and the weight multiplied by T², the form of Ye's released distillation code (DDAG, "
              "CAJ); that the code the thesis adapted (§3.3.1: 'an author's GitHub repository') is of that lineage is our "
              "inference; T² keeps the soft targets' "
              "gradients independent of T. The weight applied is λ₂·T²: 9.0 at the end of the default ramp, "
              "0.9 for experiment 0's fixed 0.1; logs and summaries show it. `loss.kd_t2_scaling: false` "
              "runs eqs. 7-8 as printed.",
              ("loss.kd_t2_scaling", "loss.kd_temperature")),
    Ambiguity("Ensemble learning",
              "Eqs. 7-13 distil only each specific classifier into the other modality's shared prediction. "
              "The MACE abstract (Ye et al., TIP 2020) says the collaborative learning also regularizes "
              "'the ensemble outputs'.",
              "The thesis's equations by default. `loss.ens_kd_weight` > 0 adds MACE as published, in a form "
              "inferred from the abstract (no MACE code was released): each image's ensemble output "
              "p_spec + p_shared, detached, is distilled into both of its classifiers, with its own weight "
              "and ramp.",
              ("loss.ens_kd_weight", "loss.ens_kd_schedule", "loss.ens_kd_rampup_epochs")),
    Ambiguity("ImageNet weights",
              "§2.4.1: 'pre-training on ImageNet', without naming the weights.",
              "The paper profile's ResNet-50 starts from torchvision's original ImageNet weights (timm "
              "`resnet50.tv_in1k`), which AGW, DDAG and CAJ load; timm's default `resnet50` weights "
              "(`a1_in1k`) are another recipe. The other backbones name their ImageNet-1k tag "
              "(`seresnet50.a1_in1k`, `efficientnet_b3.ra2_in1k`, `tresnet_m.miil_in1k`). Each run records "
              "the tag it loaded (or a local file's sha256) in results.json and the runs table.",
              ("model.pretrained",)),
    Ambiguity("Retrieval feature",
              "§2.4.1 pools the trunk output to 'a 2048-dimensional embedding vector'; §3.6 calls the "
              "baseline 'simple concatenation followed by batch normalization'.",
              "The 4096-d concatenation of the specific and shared features (2 × 2048 on ResNet-50), each "
              "half through its own BN neck, the BN the classifiers are trained through (AGW's BNNeck). "
              "`model.concat_bn: single` applies one batch norm (running statistics, no learnt scale) to "
              "the concatenation instead; `model.retrieval_feature: shared` retrieves with the 2048-d "
              "shared embedding alone.",
              ("model.concat_bn", "model.retrieval_feature")),
    Ambiguity("Number of epochs",
              "§3.3.1 trains for 60 epochs with early stopping; §3.3.3 reports Table 3 from "
              "'a complete 40-epoch training run'; experiment 5 describes ~60-epoch curves.",
              "60 epochs on the paper profile, early stopping off; the smoke profile uses a CPU-sized "
              "budget.",
              ("train.epochs", "train.early_stop_patience")),
    Ambiguity("Batch composition",
              "§3.3.1/§3.3.2: 8 images per modality with gradient accumulation over 4 steps "
              "('effective 32'); §2.4.5: 16 × 4 = 64 samples per modality; the reference code "
              "uses 8 identities × 4 images = 32 per modality.",
              "8 identities × 4 images per modality (32 + 32 per step), no accumulation: batch-hard "
              "mining needs the whole P×K batch in one step, which accumulation cannot provide. The CPU "
              "smoke profile uses 8 × 2 (measured, see [the smoke recipe](smoke-recipe)).",
              ("data.ids_per_batch", "data.images_per_id", "train.grad_accum")),
    Ambiguity("Model selection",
              "Tables 4-9 report the 'best epoch', chosen on the test set (there is no validation "
              "split); §3.3.1 also early-stops on test metrics.",
              "Final-epoch metrics. Best-epoch-on-test only when enabled, and then labelled so in "
              "every table.",
              ("train.select_on_test", "train.eval_every")),
    Ambiguity("Occlusion types",
              "The plan (§3.2.7) occludes the top, bottom, left or right half; the experiment "
              "(§3.9) uses a random rectangle, a horizontal band, an upper-body and a lower-body "
              "block, each covering 20-40 % of the image.",
              "The four executed types of §3.9 (the half-image types are available too); zero fill. "
              "§3.9 says the model is 'retrained with random rectangle and horizontal band occlusion', "
              "but Table 9's two occlusion-trained rows differ in clean Rank-1 and the text speaks of "
              "'the model trained with random rectangle augmentation' and 'the horizontal band model': "
              "this study trains one model per augmentation type (p = 0.5), as the table implies.",
              ("eval.occlusion", "eval.occlusion_fill", "data.occlusion_p", "data.occlusion_types")),
    Ambiguity("Baseline reference value",
              "Table 3 gives R1 45.59 / mAP 43.25 (one run on a Kaggle copy of the dataset); "
              "Table 9's baseline clean R1 is 44.65; Table 8's 100 % row is 45.6 / 43.3.",
              "One baseline run per training seed, reused by experiments 4 and 6; mean ± std over "
              "training seeds (each run averaged over its gallery trials).",
              ("eval.trials",)),
    Ambiguity("Input size",
              "The MACE paper uses 384×192; the thesis uses 288×144.",
              "288×144 on the paper profile; 64×32 on the CPU smoke profile (its EfficientNet stand-in at "
              "128×64, see [the smoke recipe](smoke-recipe)).",
              ("data.height", "data.width")),
    Ambiguity("Attention placement",
              "§3.2.3 places attention 'at the modality-specific extractor stage'; §3.5 places it "
              "after the modality-specific stems and before final pooling.",
              "Both positions of §3.5, each selectable.",
              ("model.attention", "model.attention_positions")),
    Ambiguity("What experiment 3 fuses",
              "§3.6 describes fusing 'visible and infrared features' of an image pair, but at test "
              "time each image has one modality; §3.2.4 speaks of specific and shared contributions.",
              "Fusion combines one image's modality-specific and modality-shared features into its "
              "retrieval embedding; concat + BN is the baseline.",
              ("model.fusion", "model.retrieval_feature")),
    Ambiguity("Backbone variants",
              "SE-ResNet-50 is run with GeM pooling; 'TResNet-M' is a SpaceToDepth stem trained from "
              "scratch on pretrained ResNet-50 layers, not timm's TResNet-M; parameter counts "
              "(49-52 M) include the MACE heads.",
              "timm's own models (seresnet50 + GeM, efficientnet_b3, tresnet_m); parameter counts "
              "measured on the built network.",
              ("model.backbone", "model.pooling", "model.pretrained")),
    Ambiguity("Triplet loss form",
              "Eq. 12 sums squared-distance hinge terms over all triplets; the text says hard "
              "negatives are mined over the joint batch.",
              "Batch-hard triplet (hardest positive and negative per anchor) on plain Euclidean distances "
              "between pre-BN fused embeddings of the joint RGB+IR batch, margin 0.3, as in the AGW reference code.",
              ("loss.triplet_margin", "loss.triplet_weight")),
    Ambiguity("Distillation direction",
              "Eqs. 7-8 write KL(σ(p_V/T), σ(p_IS/T)) without saying which side is the teacher or "
              "how pairs are formed.",
              "Index-paired RGB/IR samples of the same identity; the specific branch is the teacher, "
              "detached as in Ye's DDAG/CAJ code (inferred: the thesis does not say); T = 3 with T² "
              "scaling (see above).",
              ("loss.kd_detach_teacher", "loss.kd_temperature")),
    Ambiguity("Learning-rate schedule",
              "lr 0.1, ×0.1 after epochs 20 and 30; no warm-up is mentioned; experiment 5 links a "
              "loss spike at epochs 8-10 to 'the scheduled learning rate decay'.",
              "Milestones 20/30 with the AGW reference code's 10-epoch linear warm-up and a 0.1 backbone lr "
              "multiplier.",
              ("train.milestones", "train.warmup_epochs", "train.backbone_lr_mult")),
    Ambiguity("Gallery and test counts",
              "§2.3 says all visible images form the gallery and counts 29,033 RGB / 6,775 test RGB "
              "images; the standard protocol (and §3.7) uses 3,803 IR queries against one random "
              "image per identity per RGB camera.",
              "The standard single-shot gallery (301 images in all-search), reference picks; the "
              "official permutation file and 10-shot are options.",
              ("eval.gallery", "eval.shots", "eval.mode")),
    Ambiguity("Multi-query pool sizes",
              "Table 7 covers n = 2, 5, 10, 15, 20; the weighted and average rows are identical at "
              "n = 2 (expected: two members are equally similar to their mean).",
              "n = 1, 2, 5, 10, 15, 20 with pools drawn per identity and IR camera; a group with fewer "
              "than n images forms one pool of all of them, so Table 7 also reports the mean pool "
              "size actually fused (the smoke data holds 20 IR images per identity and IR camera, so "
              "every n up to 20 is fused in full; the real release has about 16).",
              ("eval.multi_query", "eval.fusion")),
)


def ambiguity_markdown() -> str:
    """The methods page's ambiguity table (MyST pipe table), generated from :data:`AMBIGUITIES`."""
    lines = ["| topic | what the thesis says | what this study does | config keys |", "|---|---|---|---|"]
    for a in AMBIGUITIES:
        keys = ", ".join(f"`{k}`" for k in a.config_keys)
        lines.append(f"| {a.topic} | {a.thesis_says} | {a.study_choice} | {keys} |")
    return "\n".join(lines) + "\n"
