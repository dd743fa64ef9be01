"""What reading tells other apps, which reading itself does not know (they import reading, not the reverse)."""

from django.dispatch import Signal

# Sent with ``exam_id`` by a worker once every script of the exam has its answers read (after the last
# one, and again when a script is read later): work that needs the whole class's answers can start.
exam_answers_read = Signal()
