"""The Kafka message key (``event_key_field``) of each event type the worker understands.

The LMS producer needs one per event type (EVENT_BUS_PRODUCER_CONFIG). Course events are keyed
by their course, as edx-platform and the Credentials badges documentation do: all of a course's
events stay in order on one partition. Events without a course are keyed by the learner. The
worker re-keys everything by learner itself, so the choice only spreads load; it must be a path
that exists in the event's data (tests/unit/test_tutor_plugin.py checks it against the worker's
schema catalog).
"""

EVENT_KEY_FIELDS: dict[str, str] = {
    "org.openedx.learning.auth.session.login.completed.v1": "user.id",
    "org.openedx.learning.ccx.course.passing.status.updated.v1": "course_passing_status.course.ccx_course_key",
    "org.openedx.learning.certificate.changed.v1": "certificate.course.course_key",
    "org.openedx.learning.certificate.created.v1": "certificate.course.course_key",
    "org.openedx.learning.certificate.revoked.v1": "certificate.course.course_key",
    "org.openedx.learning.cohort_membership.changed.v1": "cohort.course.course_key",
    "org.openedx.learning.course.enrollment.changed.v1": "enrollment.course.course_key",
    "org.openedx.learning.course.enrollment.created.v1": "enrollment.course.course_key",
    "org.openedx.learning.course.passing.status.updated.v1": "course_passing_status.course.course_key",
    "org.openedx.learning.course.persistent_grade_summary.changed.v1": "grade.course.course_key",
    "org.openedx.learning.course.unenrollment.completed.v1": "enrollment.course.course_key",
    "org.openedx.learning.exam.attempt.errored.v1": "exam_attempt.course_key",
    "org.openedx.learning.exam.attempt.rejected.v1": "exam_attempt.course_key",
    "org.openedx.learning.exam.attempt.reset.v1": "exam_attempt.course_key",
    "org.openedx.learning.exam.attempt.submitted.v1": "exam_attempt.course_key",
    "org.openedx.learning.exam.attempt.verified.v1": "exam_attempt.course_key",
    "org.openedx.learning.external_grader.score.submitted.v1": "score.course_id",
    "org.openedx.learning.idv_attempt.approved.v1": "idv_attempt.user.id",
    "org.openedx.learning.idv_attempt.created.v1": "idv_attempt.user.id",
    "org.openedx.learning.idv_attempt.denied.v1": "idv_attempt.user.id",
    "org.openedx.learning.idv_attempt.pending.v1": "idv_attempt.user.id",
    "org.openedx.learning.lti_provider.launch.success.v1": "launch_data.course_key",
    "org.openedx.learning.program.certificate.awarded.v1": "program_certificate.user.id",
    "org.openedx.learning.program.certificate.revoked.v1": "program_certificate.user.id",
    "org.openedx.learning.student.registration.completed.v1": "user.id",
    "org.openedx.learning.user.course_access_role.added.v1": "course_access_role_data.course_key",
    "org.openedx.learning.user.course_access_role.removed.v1": "course_access_role_data.course_key",
    "org.openedx.learning.xblock.skill.verified.v1": "xblock_info.usage_key",
}
