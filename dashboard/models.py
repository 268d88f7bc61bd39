from resync.models import District


class DistrictOutcome(District):
    """Districts as the state's dashboard lists them: last full resync, its outcome and
    errors, and the year's two mandatory full resyncs. A proxy, for its admin page."""

    class Meta:
        proxy = True
        verbose_name = "district"
        verbose_name_plural = "districts"
        default_permissions = ()
