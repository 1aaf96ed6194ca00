"""The pipeline's closing metric line shows what the evaluation protocol computed."""

from medxlate.cli import _metric_line


def test_synthrad_metrics_are_printed() -> None:
    line = _metric_line({"mae": 112.25, "psnr": 24.39, "ms_ssim": 0.8181})
    assert line == "mae=112.2, psnr=24.39, ms_ssim=0.8181"


def test_default_protocol_shows_the_body_figures_only() -> None:
    values = {"ssim_body": 0.69, "psnr_body": 19.1, "mae_body": 105.7, "ssim": 0.72, "psnr": 21.4, "mae": 69.4}
    assert _metric_line(values) == "ssim_body=0.69, psnr_body=19.1, mae_body=105.7"


def test_xray_to_ct_shows_the_reprojection_agreement() -> None:
    values = {"ssim_body": 0.2, "psnr_body": 16.5, "mae_body": 392.3, "reprojection_mae": 0.0412, "mae": 400.0}
    assert _metric_line(values) == "ssim_body=0.2, psnr_body=16.5, mae_body=392.3, reprojection_mae=0.0412"
