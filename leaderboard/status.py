"""A submission's life: queued -> scoring -> scored | rejected (a failed scoring goes back to queued).

Apart from the database models so that the scorer subprocess and the client name them without
importing SQLAlchemy.
"""

QUEUED, SCORING, SCORED, REJECTED = "queued", "scoring", "scored", "rejected"
STATUSES = (QUEUED, SCORING, SCORED, REJECTED)
FINAL = (SCORED, REJECTED)
