"""MACE network: timm backbones split per family, heads, attention, fusion (thesis §2.4, §3.4–3.6)."""
from mace_core.models.backbones import CPU_EQUIVALENTS, cpu_equivalent
from mace_core.models.mace import MaceNet, ModelOutput, build_model, count_parameters

__all__ = ["CPU_EQUIVALENTS", "MaceNet", "ModelOutput", "build_model", "count_parameters", "cpu_equivalent"]
