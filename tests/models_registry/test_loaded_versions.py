"""The loader's bound on loaded versions evicts the least recently used one."""

from models_registry import serving
from models_registry.demo_data import churn_frame
from models_registry.training import model_train


def test_the_version_evicted_is_the_least_recently_used_not_the_first_loaded(churn_model, housing_model, tmp_path):
    other = tmp_path / "churn-other.csv"
    churn_frame(n_rows=300, seed=21).to_csv(other, index=False)
    other_version = model_train(csv=other, target="churned", name=churn_model.name).model_version
    loader = serving.ModelLoader(poll_seconds=60, max_loaded=2)

    loader.get_version(churn_model.name, churn_model.version)
    loader.get_version(housing_model.name, housing_model.version)
    loader.get_version(churn_model.name, churn_model.version)  # production answers again: now the most recent
    loader.get_version(churn_model.name, other_version.version)

    assert set(loader.health()["loaded_versions"]) == {
        f"{churn_model.name} v{churn_model.version}",
        f"{churn_model.name} v{other_version.version}",
    }
