"""Reference side of `npm run metrics:check` (scripts/metrics-check.ts writes the inputs, this prints the results).

Usage: /usr/bin/python3 scripts/metrics_check.py INPUTS.safetensors  ->  one JSON object on stdout.

Computes, with numpy, scikit-learn and scikit-image, for every case and class of the input file:
- the benchmark metrics exactly as ADer's util/metric.py Evaluator computes them for the official MambaAD config
  (spec MAMBAAD.md §12: image score = max of the map, image label = max of the mask, pixel metrics over all pixels,
  grid F1 on min-max normalised maps, cal_pro_score with max_step 100 and expect_fpr 0.3); the maps are float64,
  as ADer's are;
- the pixel F1-max of sklearn's exact precision_recall_curve;
- MVTec AD's AU-PRO (compute_pro + trapezoid up to FPR 0.3, divided by 0.3, as the MVTec evaluation code does), in
  float64; the official script rounds its FPRs to float32, which moves the result by about 1e-8, so that variant is
  reported separately and is not held to 1e-9;
- the ADer AU-PRO thresholds (numpy.arange), and how many pixels skimage.measure.label labels differently from ours.
"""

import json
import struct
import sys
import warnings

import numpy as np
from scipy.ndimage import label as ndimage_label
from skimage import measure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "U8": "u1"}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[base + begin : base + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return metadata, tensors


def f1_max_of_curve(gt, scores):
    precisions, recalls, _ = precision_recall_curve(gt, scores)
    f1 = (2 * precisions * recalls) / (precisions + recalls)
    return np.max(f1[np.isfinite(f1)])


def ader_grid_f1_max(gt_px, pr_px):
    # Evaluator.run, 'mF1_max_px' branch.
    pr_px_norm = (pr_px - pr_px.min()) / (pr_px.max() - pr_px.min())
    eps, beta = 1e-8, 1.0
    gt = gt_px.astype(np.bool_)
    scores = []
    for score in np.arange(0.0, 1.0 + 1e-3, 0.05):
        pr = pr_px_norm > score
        intersection = np.logical_and(gt, pr).sum(axis=(0, 1, 2))
        predicted = pr.sum(axis=(0, 1, 2))
        labelled = gt.sum(axis=(0, 1, 2))
        precision = intersection / (predicted + eps)
        recall = intersection / (labelled + eps)
        scores.append((1 + beta**2) * precision * recall / (beta**2 * precision + recall + eps))
    return np.array(scores).max()


def ader_pro_score(masks, amaps, max_step=100, expect_fpr=0.3):
    """Evaluator.cal_pro_score. Its per-threshold loop over measure.regionprops(measure.label(mask)) is done with one
    bincount over the same regions in the same order (images, then labels), giving the same tp/area values."""
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    thresholds = np.arange(min_th, max_th, delta)
    region_ids, areas, offset = [], [], 0
    for mask in masks:
        labels = measure.label(mask)
        count = labels.max()
        areas.append(np.bincount(labels.ravel(), minlength=count + 1)[1:])
        region_ids.append(np.where(labels > 0, labels - 1 + offset, -1).ravel())
        offset += count
    region_ids = np.concatenate(region_ids)
    areas = np.concatenate(areas)
    flat = amaps.ravel()
    in_region = region_ids >= 0
    region_scores, region_of_pixel = flat[in_region], region_ids[in_region]
    inverse_masks = 1 - masks
    normal_scores = flat[inverse_masks.ravel() > 0]
    pros, fprs = [], []
    for th in thresholds:
        tp_pixels = np.bincount(region_of_pixel, weights=region_scores > th, minlength=offset)
        pros.append((tp_pixels / areas).mean())
        fprs.append((normal_scores > th).sum() / inverse_masks.sum())
    pros, fprs = np.array(pros), np.array(fprs)
    idxes = fprs < expect_fpr
    fprs = fprs[idxes]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return auc(fprs, pros[idxes]), thresholds


def mvtec_trapezoid(x, y, x_max):
    # MVTec AD evaluation code, generic_util.trapezoid.
    correction = 0.0
    if x_max not in x:
        ins = int(np.searchsorted(x, x_max, side="right"))
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + ((y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1]))
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction


def mvtec_au_pro(masks, amaps, limit=0.3):
    """MVTec AD evaluation code, generic_util.compute_pro, then trapezoid(..., x_max=limit) / limit. Returns the
    float64 result and the official one, whose FPRs are rounded to float32."""
    structure = np.ones((3, 3), dtype=int)
    fp_changes = np.zeros(masks.shape, dtype=np.uint32)
    pro_changes = np.zeros(masks.shape, dtype=np.float64)
    num_ok_pixels, num_gt_regions = 0, 0
    for index, gt_map in enumerate(masks):
        labeled, n_components = ndimage_label(gt_map, structure)
        num_gt_regions += n_components
        ok_mask = labeled == 0
        num_ok_pixels += np.sum(ok_mask)
        fp_changes[index][ok_mask] = 1
        for k in range(n_components):
            region_mask = labeled == (k + 1)
            pro_changes[index][region_mask] = 1.0 / np.sum(region_mask)
    scores = amaps.ravel()
    order = np.argsort(scores)[::-1]
    scores = scores[order]
    false_positives = np.cumsum(fp_changes.ravel()[order])
    pros = np.cumsum(pro_changes.ravel()[order]) / num_gt_regions
    keep = np.append(np.diff(scores) != 0, np.True_)
    pros = np.concatenate([[0.0], np.clip(pros[keep], 0, 1)])
    results = []
    for dtype in (np.float64, np.float32):
        fprs = false_positives.astype(dtype) / dtype(num_ok_pixels)
        fprs = np.concatenate([[0.0], np.clip(fprs[keep], 0, 1)])
        results.append(mvtec_trapezoid(fprs, pros, limit) / limit)
    return results


def evaluate_class(masks, maps):
    pr_px = maps.astype(np.float64)
    gt_px = masks
    gt_sp = gt_px.max(axis=(1, 2))
    pr_sp = pr_px.max(axis=(1, 2))
    aupro, thresholds = ader_pro_score(gt_px, pr_px)
    aupro_mvtec, aupro_mvtec_float32_fpr = mvtec_au_pro(gt_px, pr_px)
    return {
        "ader": {
            "mAUROC_sp_max": roc_auc_score(gt_sp, pr_sp),
            "mAP_sp_max": average_precision_score(gt_sp, pr_sp),
            "mF1_max_sp_max": f1_max_of_curve(gt_sp, pr_sp),
            "mAUROC_px": roc_auc_score(gt_px.ravel(), pr_px.ravel()),
            "mAP_px": average_precision_score(gt_px.ravel(), pr_px.ravel()),
            "mF1_max_px": ader_grid_f1_max(gt_px, pr_px),
            "mAUPRO_px": aupro,
        },
        "pixel_f1_max_curve": f1_max_of_curve(gt_px.ravel(), pr_px.ravel()),
        "aupro_mvtec": aupro_mvtec,
        "aupro_mvtec_float32_fpr": aupro_mvtec_float32_fpr,
        "thresholds": thresholds.tolist(),
    }


def main():
    warnings.simplefilter("ignore")
    metadata, tensors = read_safetensors(sys.argv[1])
    out = {}
    for case in json.loads(metadata["cases"]):
        name = case["name"]
        maps, masks = tensors[f"{name}.maps"], tensors[f"{name}.masks"]
        class_index, our_labels = tensors[f"{name}.class_index"], tensors[f"{name}.labels"]
        label_mismatches = sum(int((measure.label(m) != ours).sum()) for m, ours in zip(masks, our_labels))
        classes = {}
        for index, class_name in enumerate(case["classes"]):
            selected = class_index == index
            result = evaluate_class(masks[selected], maps[selected])
            result["ader"] = {key: float(value) for key, value in result["ader"].items()}
            for key in ("pixel_f1_max_curve", "aupro_mvtec", "aupro_mvtec_float32_fpr"):
                result[key] = float(result[key])
            classes[class_name] = result
        out[name] = {"classes": classes, "label_mismatches": label_mismatches}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
