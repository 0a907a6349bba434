"""`@nps_flow` and what it needs: turn a function taking a SamaHub event into a Prefect flow."""

from libnar.flow._flow import NpsFlow, nps_flow
from libnar.flow._parameters import ParameterError

__all__ = ["NpsFlow", "ParameterError", "nps_flow"]
