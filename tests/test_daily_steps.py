"""The daily DAG's plain part (tally.daily), without Airflow or services: what it hands dbt
(the tasks themselves run for real in test_daily_dag.py)."""

from tally import config, daily, recon, transform


def test_dbt_tasks_build_one_date_with_the_rules_as_data_and_no_unit_tests():
    settings = config.load()
    args = daily.dbt_operator_args(settings)
    assert args["exclude"] == transform.DAILY_EXCLUDE == "test_type:unit"
    assert args["install_deps"] is False
    assert args["vars"] == recon.dbt_vars(settings, daily.BUSINESS_DATE_XCOM)
    assert args["vars"]["as_of"] == "{{ ti.xcom_pull(task_ids='resolve_business_date') }}"
