import factory

from components.models import CheckKind, Component, ComponentGroup, ComponentStatus, HealthCheck


class ComponentGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComponentGroup

    name = factory.Sequence(lambda n: f"Group {n}")
    position = factory.Sequence(lambda n: n + 1)


class ComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Component

    name = factory.Sequence(lambda n: f"Component {n}")
    position = factory.Sequence(lambda n: n + 1)

    class Params:
        degraded_performance = factory.Trait(status=ComponentStatus.DEGRADED_PERFORMANCE)
        partial_outage = factory.Trait(status=ComponentStatus.PARTIAL_OUTAGE)
        major_outage = factory.Trait(status=ComponentStatus.MAJOR_OUTAGE)
        under_maintenance = factory.Trait(status=ComponentStatus.UNDER_MAINTENANCE)


class HealthCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthCheck

    component = factory.SubFactory(ComponentFactory)
    name = factory.Sequence(lambda n: f"Check {n}")
    kind = CheckKind.HTTP
    url = "http://example.test/health"
    timeout = 2.0
