"""Why a stored fact did what it did: ``GET /v1/facts/{id}/explain``."""
from __future__ import annotations

from flask_smorest import abort

from engine.service.explain import AmbiguousFact, UnknownFact
from engine.service.whatif import ReplayLimit
from schemas.api import FactExplainArgs, FactExplanationSchema

from .auth import READER, requires
from .body import BoundedBlueprint
from .context import current_service

blp = BoundedBlueprint("explain", __name__, url_prefix="/v1",
                       description="Why a stored fact moved the clocks it moved, and not the others")


@blp.route("/facts/<path:fact_id>/explain")
@requires(blp, READER)
@blp.arguments(FactExplainArgs, location="query")
@blp.response(200, FactExplanationSchema)
def explain_fact(args, fact_id):
    """For a stored fact, under the rules in force and with the clocks running when it was
    applied: which clocks it started, paused, resumed, stopped, cancelled or reset; for every
    other target of its service the first condition that failed; and the decisions it caused.
    Facts are addressed by id, and by ``source`` when several sources posted that id (else
    409: which facts share an id is a matter of what is stored)."""
    try:
        return current_service().store_reads.explain_fact(fact_id, args.get("source"))
    except UnknownFact as err:
        abort(404, message=str(err))
    except AmbiguousFact as err:
        abort(409, message=str(err), errors={"query.source": [str(err)]})
    except ReplayLimit as err:
        abort(422, message=f"{err}; explain it offline with slm explain --db")
