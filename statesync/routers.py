"""Route the state-side store to the `state` database and everything else to `default`."""

STATE_MODELS = {("resync", "staterecord")}


class StateRouter:
    def _is_state(self, model) -> bool:
        return (model._meta.app_label, model._meta.model_name) in STATE_MODELS

    def db_for_read(self, model, **hints):
        return "state" if self._is_state(model) else "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        # No foreign key may cross from one database to the other.
        return self._is_state(obj1) == self._is_state(obj2)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if model_name is None:
            # Data migrations (RunPython) run on the district side only.
            return db == "default"
        return (db == "state") == ((app_label, model_name) in STATE_MODELS)
